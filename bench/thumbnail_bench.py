"""Thumbnails of a 4000x3000 JPEG, mmr against Synapse, side by side on the same images.

    .venv/bin/python bench/thumbnail_bench.py [--cold 10] [--warm 300] [--seconds 5]
                                              [--concurrency 8] [--keep]

Targets, started by this script on loopback:
* mmr, the embedded default's shape (`mmr serve --config`: SQLite, file datastore, in-process
  coordination, two thumbnail worker processes), checking tokens against the Synapse below;
* Synapse (PyPI `matrix-synapse`, SQLite, its media store on disk) with `dynamic_thumbnails`
  on and no pre-generated sizes, so its first request of a size generates it as mmr's does.
  Both are asked for JPEG output (`type=image/jpeg` is Synapse's own parameter; mmr makes JPEG
  for opaque sources anyway), so neither pays for PNG encoding.

Measured, for a 96x96 crop and an 800x600 scale:
* cold latency: the first request of a size, each on a different upload of the same photo
  (distinct bytes, identical pixels), p50 and p99;
* warm latency: the same thumbnail again and again on one keep-alive connection, p50 and p99;
* warm throughput: thumbnails per second with `--concurrency` keep-alive connections, the two
  servers taking turns in one-second bursts, and each server's own CPU time per thumbnail;
* peak memory: the highest resident set (VmHWM) of any mmr worker process, and of Synapse (which
  thumbnails in its own process).

The load client is a small raw HTTP/1.1 client: the servers, not the client, must be the limit.
Figures compare within one run only (client and servers share the machine's cores).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
import yaml
from PIL import Image, ImageDraw, ImageFilter

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.infra.processes import start_mmr  # noqa: E402
from tests.infra.synapse import start_synapse  # noqa: E402

SERVER_NAME = "localhost"
UPLOAD = "/_matrix/media/v3/upload"
THUMBNAIL = "/_matrix/client/v1/media/thumbnail"
SIZES = {"96x96 crop": (96, 96, "crop"), "800x600 scale": (800, 600, "scale")}


# --- the photo ----------------------------------------------------------------------------------


def photo(width: int = 4000, height: int = 3000) -> bytes:
    """A photo-like 12-megapixel JPEG: smooth shapes, gradients and fine grain (about 3 MB)."""
    base = Image.effect_noise((width // 40, height // 40), 90).convert("RGB")
    base = base.resize((width, height), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(6))
    draw = ImageDraw.Draw(base)
    for i in range(40):
        x, y = (i * 997) % width, (i * 613) % height
        draw.ellipse((x, y, x + 300 + i * 7, y + 200 + i * 5),
                     fill=(i * 6 % 256, 255 - i * 5 % 256, i * 11 % 256))
    grain = Image.effect_noise((width, height), 20).convert("RGB")
    image = Image.blend(base.filter(ImageFilter.GaussianBlur(2)), grain, 0.2)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def variant(jpeg: bytes) -> bytes:
    """The same pixels under different bytes: a unique comment segment after the SOI marker."""
    comment = uuid.uuid4().hex.encode()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return jpeg[:2] + segment + jpeg[2:]


# --- a raw keep-alive HTTP/1.1 client ----------------------------------------------------------


class RawConnection:
    """GETs on one keep-alive connection, reading bodies by Content-Length or chunks."""

    def __init__(self, url: str) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)

    async def __aenter__(self) -> RawConnection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    def request(self, path: str, token: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n").encode()

    async def get(self, request: bytes) -> tuple[int, int]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.index(b"\r\n", at + 2)
            return status, len(await self.reader.readexactly(int(lower[at + 17:end])))
        size = 0
        while True:  # chunked
            length = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            size += len(await self.reader.readexactly(length + 2)) - 2
            if length == 0:
                return status, size


# --- targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    token: str
    pid: int
    media: dict[str, list[str]] = field(default_factory=dict)  # size -> media IDs for cold runs
    warm_media: str = ""
    results: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, float] = field(default_factory=dict)

    def path(self, media_id: str, size: str) -> str:
        width, height, method = SIZES[size]
        return (f"{THUMBNAIL}/{SERVER_NAME}/{media_id}?width={width}&height={height}"
                f"&method={method}&type=image/jpeg")


@contextmanager
def synapse(work: Path) -> Iterator[tuple[Target, str]]:
    server = start_synapse(work / "synapse", extra_config={
        "dynamic_thumbnails": True, "thumbnail_sizes": [], "max_upload_size": "100M",
        "enable_media_repo": True,
    })
    try:
        user = server.register_user("bench", "benchpass")
        assert server.process is not None
        yield Target("synapse", server.client_url, user.access_token, server.process.pid), \
            server.client_url
    finally:
        server.stop()


@contextmanager
def mmr(work: Path, homeserver_url: str, token: str) -> Iterator[Target]:
    data = work / "mmr"
    data.mkdir()
    config = {
        "repo": {"tempPath": str(data / "tmp"), "logLevel": "warning"},
        "database": {"sqlite": str(data / "mmr.db")},
        "homeservers": [{"name": SERVER_NAME, "csApi": homeserver_url}],
        "datastores": [{"id": "local", "type": "file", "forKinds": ["all"],
                        "opts": {"path": str(data / "media")}}],
        "rateLimit": {"enabled": False},
    }
    path = data / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    process = start_mmr("mmr", ["serve", "--config", str(path)], data / "logs")
    try:
        process.wait_healthy()
        yield Target("mmr", process.url, token, process.process.pid)
    finally:
        process.stop()


# --- measurements -------------------------------------------------------------------------------


def upload(target: Target, data: bytes) -> str:
    response = httpx.post(target.url + UPLOAD, content=data, timeout=120, headers={
        "Authorization": f"Bearer {target.token}", "Content-Type": "image/jpeg",
        "Host": SERVER_NAME})
    response.raise_for_status()
    return str(response.json()["content_uri"]).rsplit("/", 1)[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def describe(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5) * 1000:7.1f} ms  p99 {percentile(values, 0.99) * 1000:7.1f} ms"


async def timed_get(connection: RawConnection, request: bytes) -> float:
    started = time.perf_counter()
    status, size = await connection.get(request)
    if status != 200 or size == 0:
        raise RuntimeError(f"thumbnail request answered {status} ({size} bytes)")
    return time.perf_counter() - started


async def cold(targets: list[Target], size: str) -> None:
    """Interleaved, so both servers see the same background noise."""
    latencies: dict[str, list[float]] = {t.name: [] for t in targets}
    for index in range(len(targets[0].media[size])):
        for target in targets:
            async with RawConnection(target.url) as connection:
                request = connection.request(target.path(target.media[size][index], size),
                                             target.token)
                latencies[target.name].append(await timed_get(connection, request))
    for target in targets:
        target.results[f"cold {size}"] = describe(latencies[target.name])
        target.numbers[f"cold {size}"] = percentile(latencies[target.name], 0.5)


async def warm_latency(target: Target, size: str, count: int) -> None:
    async with RawConnection(target.url) as connection:
        request = connection.request(target.path(target.warm_media, size), target.token)
        await timed_get(connection, request)  # make sure it exists
        latencies = [await timed_get(connection, request) for _ in range(count)]
    target.results[f"warm {size}"] = describe(latencies)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _burst(target: Target, size: str, seconds: float, concurrency: int) -> tuple[int, float]:
    """(thumbnails served, seconds taken) by `concurrency` keep-alive connections."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        async with RawConnection(target.url) as connection:
            request = connection.request(target.path(target.warm_media, size), target.token)
            while time.perf_counter() < deadline:
                await timed_get(connection, request)
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done, time.perf_counter() - started


async def warm_rates(targets: list[Target], size: str, seconds: float, concurrency: int) -> None:
    """Short bursts taking turns, so both servers share whatever else the machine is doing;
    the server's own CPU time per thumbnail is measured alongside (immune to that noise)."""
    rounds = max(1, round(seconds))
    served = {t.name: 0 for t in targets}
    took = {t.name: 0.0 for t in targets}
    cpu = {t.name: 0.0 for t in targets}
    for _ in range(rounds):
        for target in targets:
            before = cpu_seconds(target.pid)
            done, elapsed = await _burst(target, size, seconds / rounds, concurrency)
            cpu[target.name] += cpu_seconds(target.pid) - before
            served[target.name] += done
            took[target.name] += elapsed
    for target in targets:
        rate = served[target.name] / took[target.name]
        per_request = cpu[target.name] / max(served[target.name], 1) * 1e6
        target.results[f"warm {size} rate"] = (
            f"{rate:6.0f} thumbnails/s, {per_request:5.0f} us server CPU each")
        target.numbers[f"warm {size} rate"] = rate
        target.numbers[f"warm {size} cpu"] = per_request


# --- memory -------------------------------------------------------------------------------------


def _status(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def worker_pids(mmr_pid: int) -> list[int]:
    """mmr's thumbnail workers: the children of its forkserver (a child of mmr)."""
    workers = []
    for child in _children(mmr_pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"forkserver" in cmdline:
            workers.extend(_children(child))
    return workers


def memory_report(mmr_target: Target, synapse_target: Target) -> None:
    workers = worker_pids(mmr_target.pid)
    peaks = [_status(pid, "VmHWM") for pid in workers]
    mib = 1024 * 1024
    mmr_target.results["peak memory"] = (
        f"{max(peaks, default=0) / mib:6.1f} MiB per worker ({len(workers)} workers), "
        f"service process {_status(mmr_target.pid, 'VmHWM') / mib:.1f} MiB")
    synapse_target.results["peak memory"] = (
        f"{_status(synapse_target.pid, 'VmHWM') / mib:6.1f} MiB (one process thumbnails in-process)")


# --- the run ------------------------------------------------------------------------------------


def prepare(targets: list[Target], source: bytes, cold_count: int) -> None:
    for target in targets:
        for size in SIZES:
            target.media[size] = [upload(target, variant(source)) for _ in range(cold_count)]
        target.warm_media = upload(target, variant(source))
        warmup = upload(target, variant(source))
        for size in SIZES:  # first requests start worker processes and thread pools
            response = httpx.get(target.url + target.path(warmup, size), timeout=120, headers={
                "Authorization": f"Bearer {target.token}", "Host": SERVER_NAME})
            response.raise_for_status()


async def measure(targets: list[Target], args: argparse.Namespace) -> None:
    for size in SIZES:
        await cold(targets, size)
    memory_report(targets[0], targets[1])
    for size in SIZES:
        for target in targets:
            await warm_latency(target, size, args.warm)
        await warm_rates(targets, size, args.seconds, args.concurrency)


def report(mmr_target: Target, synapse_target: Target) -> None:
    print(f"\n{'':24} {'mmr':44} synapse")
    for key in mmr_target.results:
        print(f"{key:24} {mmr_target.results[key]:44} {synapse_target.results.get(key, '')}")
    print("\nratios (target: cold >= 3x faster, warm >= 5x the rate)")
    for size in SIZES:
        speedup = synapse_target.numbers[f"cold {size}"] / mmr_target.numbers[f"cold {size}"]
        rate = mmr_target.numbers[f"warm {size} rate"] / synapse_target.numbers[f"warm {size} rate"]
        cpu = synapse_target.numbers[f"warm {size} cpu"] / mmr_target.numbers[f"warm {size} cpu"]
        print(f"  {size:14} cold p50 {speedup:5.1f}x faster   warm {rate:5.1f}x the rate "
              f"({cpu:4.1f}x less server CPU per thumbnail)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", type=int, default=10, help="cold requests per size")
    parser.add_argument("--warm", type=int, default=300, help="warm latency requests per size")
    parser.add_argument("--seconds", type=float, default=5.0, help="warm throughput duration")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmr-thumbnail-bench-"))
    source = photo()
    print(f"source: 4000x3000 JPEG, {len(source) / 1e6:.1f} MB; cpus: {os.cpu_count()}; work: {work}")
    with ExitStack() as stack:
        synapse_target, synapse_url = stack.enter_context(synapse(work))
        mmr_target = stack.enter_context(mmr(work, synapse_url, synapse_target.token))
        targets = [mmr_target, synapse_target]
        prepare(targets, source, args.cold)
        # uvloop keeps the client's own cost per request low: the servers must be the limit.
        uvloop.run(measure(targets, args))
        report(mmr_target, synapse_target)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print(f"\n({args.cold} cold and {args.warm} warm requests per size and server; rates over "
          f"{args.seconds:g} s with {args.concurrency} connections)")


if __name__ == "__main__":
    main()
