"""What the download byte budget and the open-ended range chunk cost and save, measured against
mmr without them in the same run.

    .venv/bin/python bench/download_budget.py [--files 16] [--requests 1000] [--concurrency 32]
        [--seek-file-mib 256] [--seeks 8] [--rounds 2] [--skip-cluster]

For each mode (the embedded default; a cluster of two download processes on PostgreSQL, Redis
and SeaweedFS S3) two configurations run alternately, `--rounds` times each (medians reported;
on a small machine one run of a cluster varies by a third):

* before: `rateLimit.enabled: false` and `downloads.defaultRangeChunkSizeBytes` larger than any
  file (what mmr did before this change);
* after: `rateLimit.enabled: true` with a per-IP request limit and download bucket far too large
  to refuse anything (so every download pays for the bucket, Redis in the cluster) and the
  default 10 MiB range chunk.

Reported per configuration: 1 MiB downloads per second, p50/p95 latency and the servers' CPU time
per download (`--requests` downloads from `--concurrency` clients, as bench/download_throughput.py
does), then a player seeking `--seeks` times in a `--seek-file-mib` file with open-ended
`Range: bytes=N-` requests whose answers it reads to the end (a client that does not hang up):
MiB sent and seconds taken. The ratio column is after / before. Last, the CPU time of one
`Coordinator.leaky_bucket` call (the bucket's whole cost per download) next to one `rate_limit`
call (the request limiter's), in process and through Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.download_throughput import (  # noqa: E402
    DOWNLOAD_PATH,
    MIB,
    UPLOAD_PATH,
    Target,
    cpu_seconds,
    download_many,
    headers_for,
    upload_files,
)
from bench.rig import HOST, SECRET, mmr_cluster, mmr_embedded, started  # noqa: E402
from bench.upload_throughput import streamed_body  # noqa: E402
from shared.coordination.base import Coordinator  # noqa: E402
from shared.coordination.inprocess import InProcessCoordinator  # noqa: E402
from shared.coordination.redis import RedisCoordinator  # noqa: E402
from tests.infra.processes import start_mmr  # noqa: E402
from tests.infra.redis_server import ensure_redis  # noqa: E402

NEVER_REFUSED = 1 << 50  # bytes: a bucket no benchmark fills


def sections(after: bool, seek_file_mib: int) -> dict[str, Any]:
    uploads = {"maxBytes": (seek_file_mib + 1) * MIB}
    if not after:
        return {"uploads": uploads, "rateLimit": {"enabled": False},
                "downloads": {"defaultRangeChunkSizeBytes": (seek_file_mib + 1) * MIB}}
    bucket = {"capacityBytes": NEVER_REFUSED, "overflowLimitBytes": NEVER_REFUSED,
              "drainBytesPerMinute": 5242880}
    return {"uploads": uploads, "rateLimit": {
        "enabled": True, "requestsPerSecond": 1_000_000, "burst": 1_000_000,
        "buckets": {"downloads": bucket}}}


@contextmanager
def embedded(work: Path, after: bool, args: argparse.Namespace) -> Iterator[Target]:
    with mmr_embedded(work, sections(after, args.seek_file_mib)) as process:
        yield Target(f"embedded {'after' if after else 'before'}", process.url + UPLOAD_PATH,
                     [process.url + DOWNLOAD_PATH], SECRET, [process.process.pid], HOST)


@contextmanager
def cluster(work: Path, after: bool, args: argparse.Namespace) -> Iterator[Target]:
    with ExitStack() as stack, mmr_cluster(
        work, stack, "download", sections(after, args.seek_file_mib), count=2
    ) as downloads:
        config = str(work / "cluster" / "config.yaml")
        upload = started(start_mmr("upload3", ["serve", "upload", "--config", config],
                                   work / "cluster" / "logs", env={"MACHINE_ID": "3"}))
        try:
            yield Target(f"cluster {'after' if after else 'before'}", upload.url + UPLOAD_PATH,
                         [p.url + DOWNLOAD_PATH for p in downloads], SECRET,
                         [p.process.pid for p in downloads], HOST)
        finally:
            upload.stop()


async def seeking_player(target: Target, size_mib: int, seeks: int) -> tuple[float, float]:
    """(MiB received, seconds) for `seeks` open-ended ranges spread over one big file."""
    size = size_mib * MIB
    async with httpx.AsyncClient(headers=headers_for(target), timeout=3600) as client:
        response = await client.post(target.upload_url, content=streamed_body(size),
                                     headers={"Content-Type": "video/mp4",
                                              "Content-Length": str(size)})
        if response.status_code != 200:
            raise RuntimeError(f"{target.name}: big upload {response.status_code}")
        url = f"{target.download_urls[0]}/{response.json()['content_uri'].removeprefix('mxc://')}"
        received = 0
        started_at = time.perf_counter()
        for seek in range(seeks):
            start = size * seek // seeks
            async with client.stream("GET", url, headers={"Range": f"bytes={start}-"}) as answer:
                if answer.status_code != 206:
                    raise RuntimeError(f"{target.name}: seek answered {answer.status_code}")
                async for chunk in answer.aiter_raw():
                    received += len(chunk)
        return received / MIB, time.perf_counter() - started_at


async def measure(target: Target, args: argparse.Namespace) -> None:
    await upload_files(target, args.files)
    await download_many(target, min(args.requests, 100), args.concurrency)  # warm up
    cpu_before = cpu_seconds(target.pids)
    started_at = time.perf_counter()
    latencies = sorted(await download_many(target, args.requests, args.concurrency))
    elapsed = time.perf_counter() - started_at
    cpu_used = cpu_seconds(target.pids) - cpu_before
    sent_mib, seek_seconds = await seeking_player(target, args.seek_file_mib, args.seeks)
    target.results.update({
        "downloads_per_s": args.requests / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "cpu_ms": cpu_used / args.requests * 1000,
        "seek_mib": sent_mib,
        "seek_s": seek_seconds,
    })


async def call_cost_us(coordinator: Coordinator, bucket: bool, calls: int = 4000) -> float:
    """CPU microseconds per call, 32 calls in flight as under concurrent downloads."""
    async def one(index: int) -> None:
        if bucket:
            await coordinator.leaky_bucket(f"bench:{index % 64}", MIB, NEVER_REFUSED, 87381.0,
                                           NEVER_REFUSED)
        else:
            await coordinator.rate_limit(f"bench:{index % 64}", 1e9, 1_000_000)

    async def batch(first: int) -> None:
        await asyncio.gather(*(one(first + i) for i in range(32)))

    for _ in range(calls // 320):  # warm up: connections opened, scripts loaded
        await batch(0)
    cpu_before = time.process_time()
    for first in range(0, calls, 32):
        await batch(first)
    return (time.process_time() - cpu_before) / calls * 1e6


async def coordinator_costs(with_redis: bool) -> dict[str, tuple[float, float]]:
    """{coordinator: (leaky_bucket us, rate_limit us)}."""
    coordinators: dict[str, Coordinator] = {"in process": InProcessCoordinator()}
    if with_redis:
        coordinators["Redis"] = RedisCoordinator(ensure_redis(), namespace="bench-budget")
    costs = {}
    for name, coordinator in coordinators.items():
        costs[name] = (await call_cost_us(coordinator, True), await call_cost_us(coordinator, False))
        await coordinator.close()
    return costs


def median_results(runs: list[Target]) -> Target:
    merged = runs[0]
    merged.results = {key: statistics.median(run.results[key] for run in runs)
                      for key in runs[0].results}
    return merged


ROWS = [("downloads_per_s", "1 MiB downloads/s"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"),
        ("cpu_ms", "server CPU ms/download"), ("seek_mib", "seeking: MiB sent"),
        ("seek_s", "seeking: seconds")]


def report(
    pairs: list[tuple[Target, Target]], costs: dict[str, tuple[float, float]],
    args: argparse.Namespace,
) -> None:
    print(f"\n{args.requests} x 1 MiB downloads over {args.files} files, {args.concurrency} "
          f"clients; {args.seeks} open-ended seeks in a {args.seek_file_mib} MiB file; "
          f"medians of {args.rounds} rounds")
    for before, after in pairs:
        print(f"\n{'':26}{before.name:>18}{after.name:>18}{'after/before':>14}")
        for key, label in ROWS:
            old, new = before.results[key], after.results[key]
            print(f"{label:26}{old:>18.1f}{new:>18.1f}{new / old:>13.2f}x")
    print("\nCPU per call, 32 in flight:")
    for name, (bucket_us, limiter_us) in costs.items():
        print(f"  {name:11} leaky_bucket {bucket_us:6.0f} us   rate_limit {limiter_us:6.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seek-file-mib", type=int, default=256)
    parser.add_argument("--seeks", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()
    modes = [embedded] if args.skip_cluster else [embedded, cluster]
    pairs: list[tuple[Target, Target]] = []
    with tempfile.TemporaryDirectory(prefix="mmr-bench-budget-") as tmp:
        for mode in modes:
            runs: dict[bool, list[Target]] = {False: [], True: []}
            for round_number in range(args.rounds):
                for after in (False, True):
                    # One configuration at a time, so none competes with another for the cores.
                    work = Path(tmp) / f"{mode.__name__}-{after}-{round_number}"
                    work.mkdir()
                    with mode(work, after, args) as target:
                        print(f"measuring {target.name} ...", flush=True)
                        asyncio.run(measure(target, args))
                        runs[after].append(target)
            pairs.append((median_results(runs[False]), median_results(runs[True])))
    costs = asyncio.run(coordinator_costs(with_redis=not args.skip_cluster))
    report(pairs, costs, args)


if __name__ == "__main__":
    main()
