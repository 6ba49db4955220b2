"""Upload throughput (1 MiB and 100 MiB files) and server memory during a 1 GiB upload, for mmr
(embedded default and a cluster) and a Synapse peer, all in one run on loopback.

    .venv/bin/python bench/upload_throughput.py [--small 200] [--large 5] [--concurrency 8]
                                                [--skip-synapse] [--skip-cluster] [--skip-gib]

Targets:
* mmr embedded default: one `mmr serve --config` process, SQLite, file datastore, in-process
  coordination (the embedded default's shape; maxBytes raised so the 1 GiB upload is allowed);
* mmr cluster: admin (machine 0) plus two `mmr serve upload` processes (machines 1 and 2) on
  PostgreSQL, Redis and SeaweedFS S3; the client alternates between the two upload processes;
* Synapse (PyPI `matrix-synapse`, SQLite, its own media store on disk), a registered user.

Every upload has distinct content (no deduplication shortcut). The client streams bodies from
one random 1 MiB block, so it never holds a whole file either. Memory: the resident set of the
process receiving a 1 GiB upload, sampled from /proc every 20 ms, peak minus the idle value just
before. Figures compare within one run only: client and servers share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench import rig  # noqa: E402
from shared.storage.s3 import TRANSFER_CONFIG  # noqa: E402
from tests.infra.processes import MmrProcess  # noqa: E402

UPLOAD_PATH = "/_matrix/media/v3/upload"
MIB = 1024 * 1024
GIB = 1024 * MIB
BLOCK = os.urandom(MIB)


@dataclass
class Target:
    name: str
    urls: list[str]  # upload endpoints, used round-robin
    token: str
    pids: list[int]  # the process behind each url, for memory sampling
    host: str | None = None
    results: dict[str, float] = field(default_factory=dict)
    storage: tuple[Any, str] | None = None  # (boto3 client, bucket) behind a cluster


# --- bodies -----------------------------------------------------------------------------------


def small_body() -> bytes:
    """1 MiB whose first bytes are unique, so every upload is new content."""
    return uuid.uuid4().bytes + BLOCK[16:]


async def streamed_body(size: int) -> AsyncIterator[bytes]:
    """`size` bytes in 1 MiB chunks, the first one made unique."""
    yield uuid.uuid4().bytes + BLOCK[16:]
    sent = MIB
    view = memoryview(BLOCK)
    while sent < size:
        step = min(MIB, size - sent)
        yield bytes(view[:step])
        sent += step


# --- targets ----------------------------------------------------------------------------------


UPLOAD_SECTIONS = {"uploads": {"maxBytes": 2 * GIB}}


@contextmanager
def mmr_embedded(work: Path) -> Iterator[Target]:
    with rig.mmr_embedded(work, UPLOAD_SECTIONS) as process:
        yield Target("mmr embedded", [process.url + UPLOAD_PATH], rig.SECRET, [process.process.pid],
                     rig.HOST)


def _s3_of(process: MmrProcess) -> tuple[Any, str]:
    """(boto3 client, bucket) of the S3 datastore in the config a process was started with."""
    config = yaml.safe_load(Path(process.args[process.args.index("--config") + 1]).read_text())
    opts = config["datastores"][0]["opts"]
    client = boto3.client(
        "s3", endpoint_url=opts["endpoint"], aws_access_key_id=opts["accessKeyId"],
        aws_secret_access_key=opts["accessSecret"], region_name=opts["region"] or "us-east-1",
    )
    return client, opts["bucketName"]


@contextmanager
def mmr_cluster(work: Path, stack: ExitStack) -> Iterator[Target]:
    with rig.mmr_cluster(work, stack, "upload", UPLOAD_SECTIONS, count=2) as uploads:
        target = Target("mmr cluster (2 upload procs)", [p.url + UPLOAD_PATH for p in uploads],
                        rig.SECRET, [p.process.pid for p in uploads], rig.HOST)
        target.storage = _s3_of(uploads[0])
        yield target


@contextmanager
def synapse_peer(work: Path) -> Iterator[Target]:
    from tests.infra.synapse import start_synapse

    server = start_synapse(work / "synapse", extra_config={"max_upload_size": "2G"})
    try:
        user = server.register_user("bench")
        assert server.process is not None
        yield Target("synapse", [server.client_url + UPLOAD_PATH], user.access_token,
                     [server.process.pid])
    finally:
        server.stop()


# --- measurements -----------------------------------------------------------------------------


def client_for(target: Target, concurrency: int) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/octet-stream"}
    if target.host:
        headers["Host"] = target.host
    limits = httpx.Limits(max_connections=concurrency * 2)
    return httpx.AsyncClient(headers=headers, timeout=600, limits=limits)


async def post_streamed(client: httpx.AsyncClient, url: str, size: int) -> httpx.Response:
    # Declared up front, as clients do (Synapse refuses uploads without a Content-Length).
    return await client.post(url, content=streamed_body(size), headers={"Content-Length": str(size)})


def check(target: Target, response: httpx.Response) -> None:
    if response.status_code != 200 or "content_uri" not in response.json():
        raise RuntimeError(f"{target.name}: {response.status_code} {response.text[:200]}")


async def upload_many(target: Target, count: int, concurrency: int, size: int) -> float:
    """Upload `count` files of `size` bytes, `concurrency` at a time; return seconds taken."""
    remaining = list(range(count))
    async with client_for(target, concurrency) as client:

        async def worker() -> None:
            while remaining:
                index = remaining.pop()
                url = target.urls[index % len(target.urls)]
                if size == MIB:
                    check(target, await client.post(url, content=small_body()))
                else:
                    check(target, await post_streamed(client, url, size))

        started_at = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started_at


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class PeakSampler:
    """Samples a process's RSS in a thread until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def gib_upload_memory(target: Target) -> tuple[int, int]:
    """(idle RSS, peak RSS) of the receiving process around one 1 GiB upload."""
    pid = target.pids[0]
    idle = statistics.median(rss_bytes(pid) for _ in range(5))
    async with client_for(target, 1) as client:
        with PeakSampler(pid) as sampler:
            check(target, await post_streamed(client, target.urls[0], GIB))
    return int(idle), sampler.peak


async def measure(target: Target, args: argparse.Namespace) -> None:
    # Memory first, on a process that has served one small upload only: later uploads would
    # already have grown it, hiding what a big upload costs.
    await upload_many(target, 1, 1, MIB)
    if not args.skip_gib:
        idle, peak = await gib_upload_memory(target)
        target.results["idle MiB"] = idle / MIB
        target.results["1GiB peak+ MiB"] = (peak - idle) / MIB
    await upload_many(target, args.concurrency, args.concurrency, MIB)  # warm up
    seconds = await upload_many(target, args.small, args.concurrency, MIB)
    target.results["1MiB/s"] = args.small / seconds
    seconds = await upload_many(target, args.large, min(args.large, 2), 100 * MIB)
    target.results["100MiB MiB/s"] = args.large * 100 / seconds


def storage_ceiling(target: Target, args: argparse.Namespace, work: Path) -> Target:
    """The same uploads straight into the cluster's S3 with boto3 (what mmr's S3 store does),
    no mmr in between: the most the cluster could reach on this machine."""
    assert target.storage is not None
    client, bucket = target.storage
    files = {size: work / f"ceiling-{size}" for size in (MIB, 100 * MIB)}
    for size, path in files.items():
        with open(path, "wb") as out:
            for _ in range(size // MIB):
                out.write(BLOCK)

    def put(size: int) -> None:
        client.upload_file(str(files[size]), bucket, f"ceiling/{uuid.uuid4().hex}",
                           Config=TRANSFER_CONFIG)

    ceiling = Target("  S3 alone (boto3, ceiling)", [], "", [])
    with ThreadPoolExecutor(args.concurrency) as pool:
        started_at = time.perf_counter()
        list(pool.map(put, [MIB] * args.small))
        ceiling.results["1MiB/s"] = args.small / (time.perf_counter() - started_at)
    with ThreadPoolExecutor(2) as pool:
        started_at = time.perf_counter()
        list(pool.map(put, [100 * MIB] * args.large))
        ceiling.results["100MiB MiB/s"] = args.large * 100 / (time.perf_counter() - started_at)
    return ceiling


def report(targets: list[Target], args: argparse.Namespace) -> None:
    peer = next((t for t in targets if t.name == "synapse"), None)
    print(f"\nUploads on loopback: {args.small} x 1 MiB at concurrency {args.concurrency}, "
          f"{args.large} x 100 MiB at concurrency {min(args.large, 2)}"
          + ("" if args.skip_gib else ", RSS during one 1 GiB upload"))
    columns = ["1MiB/s", "100MiB MiB/s", "idle MiB", "1GiB peak+ MiB"]
    print(f"{'target':30}" + "".join(f"{c:>16}" for c in columns)
          + ("".join(f"{c + ' xpeer':>20}" for c in columns[:2]) if peer else ""))
    for target in targets:
        row = f"{target.name:30}" + "".join(
            f"{target.results.get(c, float('nan')):>16.1f}" for c in columns)
        if peer:
            row += "".join(f"{target.results.get(c, float('nan')) / peer.results[c]:>20.2f}"
                           for c in columns[:2])
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--small", type=int, default=200, help="number of 1 MiB uploads")
    parser.add_argument("--large", type=int, default=5, help="number of 100 MiB uploads")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-synapse", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-gib", action="store_true", help="skip the 1 GiB memory figure")
    args = parser.parse_args()

    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="upload-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        makers = [lambda: mmr_embedded(work)]
        if not args.skip_cluster:
            makers.append(lambda: mmr_cluster(work, stack))
        if not args.skip_synapse:
            makers.append(lambda: synapse_peer(work))
        for make in makers:
            with make() as target:
                asyncio.run(measure(target, args))
                targets.append(target)
                print(f"measured {target.name}: {target.results}", file=sys.stderr)
                if target.storage is not None:
                    targets.append(storage_ceiling(target, args, work))
    report(targets, args)


if __name__ == "__main__":
    main()
