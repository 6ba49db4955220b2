"""A bounded mixed workload against running `mmr` processes, with their resources sampled.

Used by `tests/e2e/test_soak.py` (about a minute) and `bench/soak.py` (as long as asked). Each
worker loops over a weighted mix of what clients and attackers do: uploads, whole and ranged
downloads, thumbnails, async create + PUT, unknown media, uploads abandoned mid-body, oversized
request heads. Every few seconds each process's RSS, open file descriptors, thread count, its
children's RSS and (on PostgreSQL) its database's connection count are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import psutil
from PIL import Image

MIB = 1024 * 1024


@dataclass
class Sample:
    elapsed: float
    rss: int
    fds: int
    threads: int
    children_rss: int
    db_connections: int | None


@dataclass
class Target:
    """One process under load: where it listens, its pid, its token, how to count its DB links."""

    name: str
    url: str
    port: int
    pid: int
    token: str
    db_connections: Callable[[], int] | None = None
    samples: list[Sample] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


def _jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (320, 240), tuple(rng.randrange(256) for _ in range(3)))  # type: ignore[arg-type]
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80, comment=os.urandom(8))
    return out.getvalue()


def sample(target: Target, started: float) -> Sample:
    process = psutil.Process(target.pid)
    children = process.children(recursive=True)
    children_rss = 0
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            children_rss += child.memory_info().rss
    return Sample(time.monotonic() - started, process.memory_info().rss, process.num_fds(),
                  process.num_threads(), children_rss,
                  target.db_connections() if target.db_connections else None)


class Workload:
    def __init__(self, target: Target, rng: random.Random) -> None:
        self.target = target
        self.rng = rng
        self.media: list[str] = []
        self.pictures: list[str] = []

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.target.url, timeout=60, headers={
            "Authorization": f"Bearer {self.target.token}", "Host": "localhost"})

    async def prepare(self, client: httpx.AsyncClient) -> None:
        for seed in range(4):
            answer = await client.post("/_matrix/media/v3/upload", content=_jpeg(seed),
                                       headers={"Content-Type": "image/jpeg"})
            answer.raise_for_status()
            self.pictures.append(answer.json()["content_uri"].removeprefix("mxc://"))

    async def upload(self, client: httpx.AsyncClient) -> int:
        answer = await client.post("/_matrix/media/v3/upload",
                                   content=os.urandom(self.rng.randrange(1024, 64 * 1024)))
        if answer.status_code == 200:
            self.media.append(answer.json()["content_uri"].removeprefix("mxc://"))
            del self.media[:-200]
        return answer.status_code

    async def download(self, client: httpx.AsyncClient) -> int:
        if not self.media:
            return await self.upload(client)
        path = f"/_matrix/client/v1/media/download/{self.rng.choice(self.media)}"
        headers = {"Range": "bytes=10-500"} if self.rng.random() < 0.3 else {}
        return (await client.get(path, headers=headers)).status_code

    async def thumbnail(self, client: httpx.AsyncClient) -> int:
        size = self.rng.choice([32, 96, 320])
        path = f"/_matrix/client/v1/media/thumbnail/{self.rng.choice(self.pictures)}"
        params = {"width": size, "height": size, "method": self.rng.choice(["crop", "scale"])}
        return (await client.get(path, params=params)).status_code

    async def create_and_put(self, client: httpx.AsyncClient) -> int:
        created = await client.post("/_matrix/media/v1/create")
        if created.status_code != 200:
            return created.status_code
        mxc = created.json()["content_uri"].removeprefix("mxc://")
        return (await client.put(f"/_matrix/media/v3/upload/{mxc}", content=os.urandom(2048))).status_code

    async def missing(self, client: httpx.AsyncClient) -> int:
        return (await client.get("/_matrix/client/v1/media/download/localhost/"
                                 + "A" * 27)).status_code

    async def abandoned_upload(self, client: httpx.AsyncClient) -> int:
        async def body() -> AsyncIterator[bytes]:
            yield os.urandom(256 * 1024)
            raise ConnectionAbortedError("client gone")

        try:
            await client.post("/_matrix/media/v3/upload", content=body())
        except (httpx.HTTPError, ConnectionAbortedError):
            return 0
        return -1

    async def oversized_head(self, _client: httpx.AsyncClient) -> int:
        def attack() -> int:
            with socket.create_connection(("127.0.0.1", self.target.port), timeout=10) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: "
                                 + b"a" * (64 * 1024) + b"\r\n\r\n")
                answer = sock.recv(64)
            return int(answer.split()[1]) if answer else 0

        return await asyncio.to_thread(attack)

    MIX = (("upload", 4), ("download", 6), ("thumbnail", 3), ("create_and_put", 1),
           ("missing", 2), ("abandoned_upload", 1), ("oversized_head", 1))

    async def run(self, until: float) -> None:
        names = [name for name, _ in self.MIX]
        weights = [weight for _, weight in self.MIX]
        async with self._client() as client:
            if not self.pictures:
                await self.prepare(client)
            while time.monotonic() < until:
                name = self.rng.choices(names, weights)[0]
                try:
                    status = await getattr(self, name)(client)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__  # type: ignore[assignment]
                self.target.outcomes[f"{name} {status}"] += 1


async def soak(targets: list[Target], seconds: float, workers: int = 3,
               sample_every: float = 2.0) -> None:
    """Run the mix on every target for `seconds`, sampling each every `sample_every`."""
    started = time.monotonic()
    until = started + seconds

    async def sampler() -> None:
        while time.monotonic() < until:
            for target in targets:
                target.samples.append(await asyncio.to_thread(sample, target, started))
            await asyncio.sleep(sample_every)

    loads = [Workload(t, random.Random(i)) for t in targets for i in range(workers)]
    await asyncio.gather(sampler(), *(load.run(until) for load in loads))
    for target in targets:
        target.samples.append(await asyncio.to_thread(sample, target, started))


def thirds(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """The middle and last third (the first is warm-up: caches, pools, worker processes)."""
    third = max(len(samples) // 3, 1)
    return samples[third:2 * third], samples[2 * third:]


def curve(target: Target) -> str:
    lines = [f"{target.name}: t(s) RSS(MiB) fds threads children-RSS(MiB) db-conns"]
    for s in target.samples:
        db = "-" if s.db_connections is None else str(s.db_connections)
        lines.append(f"  {s.elapsed:6.1f} {s.rss / MIB:8.1f} {s.fds:4d} {s.threads:4d} "
                     f"{s.children_rss / MIB:8.1f} {db}")
    return "\n".join(lines)
