"""Download throughput of 1 MiB files under many concurrent clients, and server memory while one
2 GiB file streams out, for mmr (embedded default and a cluster) and a Synapse peer in one run.

    .venv/bin/python bench/download_throughput.py [--files 32] [--requests 2000]
        [--concurrency 64] [--big-mib 2048] [--skip-synapse] [--skip-cluster] [--skip-big]

Targets:
* mmr embedded default: one `mmr serve --config` process (SQLite, file datastore, in-process
  coordination);
* mmr cluster: admin (machine 0), two `mmr serve download` processes (machines 1, 2) and one
  upload process (machine 3) on PostgreSQL, Redis and SeaweedFS S3; downloads alternate between
  the two download processes;
* Synapse (PyPI `matrix-synapse`, SQLite, media on disk) with a registered user.

Each target first gets `--files` distinct 1 MiB files through its own upload API, then answers
`--requests` authenticated `GET /_matrix/client/v1/media/download/...` of them from
`--concurrency` concurrent clients (one async client, bodies read and dropped). Reported: downloads
per second, MiB/s, latency percentiles and the servers' own CPU time per download (from
/proc, summed over the target's processes), the figure least distorted by the client sharing the
cores. Big: RSS of the serving process while one `--big-mib` file streams to a slow-ish reader,
sampled every 20 ms: flat means the peak stays within a few MiB of the idle value.
Figures compare within one run only; the ratio column is mmr / Synapse.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.rig import HOST, SECRET, mmr_cluster, mmr_embedded, started  # noqa: E402
from bench.upload_throughput import PeakSampler, rss_bytes, streamed_body  # noqa: E402
from tests.infra.processes import start_mmr  # noqa: E402

UPLOAD_PATH = "/_matrix/media/v3/upload"
DOWNLOAD_PATH = "/_matrix/client/v1/media/download"
MIB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    name: str
    upload_url: str
    download_urls: list[str]  # used round-robin
    token: str
    pids: list[int]  # the processes serving downloads
    host: str | None = None
    media: list[str] = field(default_factory=list)  # "<server>/<media id>"
    results: dict[str, float] = field(default_factory=dict)


def headers_for(target: Target) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {target.token}"}
    if target.host:
        headers["Host"] = target.host
    return headers


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLOCK_TICKS


# --- targets ----------------------------------------------------------------------------------


def big_sections(args: argparse.Namespace) -> dict[str, object]:
    return {"uploads": {"maxBytes": (args.big_mib + 1) * MIB}}


@contextmanager
def embedded_target(work: Path, args: argparse.Namespace) -> Iterator[Target]:
    with mmr_embedded(work, big_sections(args)) as process:
        yield Target("mmr embedded", process.url + UPLOAD_PATH, [process.url + DOWNLOAD_PATH],
                     SECRET, [process.process.pid], HOST)


@contextmanager
def cluster_target(work: Path, stack: ExitStack, args: argparse.Namespace) -> Iterator[Target]:
    with mmr_cluster(work, stack, "download", big_sections(args), count=2) as downloads:
        config = str(work / "cluster" / "config.yaml")
        upload = started(start_mmr("upload3", ["serve", "upload", "--config", config],
                                   work / "cluster" / "logs", env={"MACHINE_ID": "3"}))
        try:
            yield Target("mmr cluster (2 download procs)", upload.url + UPLOAD_PATH,
                         [p.url + DOWNLOAD_PATH for p in downloads], SECRET,
                         [p.process.pid for p in downloads], HOST)
        finally:
            upload.stop()


@contextmanager
def synapse_target(work: Path, args: argparse.Namespace) -> Iterator[Target]:
    from tests.infra.synapse import start_synapse

    size = f"{args.big_mib + 1}M"
    server = start_synapse(work / "synapse", extra_config={"max_upload_size": size})
    try:
        user = server.register_user("bench")
        assert server.process is not None
        yield Target("synapse", server.client_url + UPLOAD_PATH,
                     [server.client_url + DOWNLOAD_PATH], user.access_token, [server.process.pid])
    finally:
        server.stop()


# --- measurements -----------------------------------------------------------------------------


async def upload_files(target: Target, count: int) -> None:
    block = os.urandom(MIB)
    async with httpx.AsyncClient(headers=headers_for(target), timeout=600) as client:
        for _ in range(count):
            body = uuid.uuid4().bytes + block[16:]
            response = await client.post(target.upload_url, content=body,
                                         headers={"Content-Type": "application/octet-stream"})
            if response.status_code != 200:
                raise RuntimeError(f"{target.name}: upload {response.status_code} {response.text}")
            target.media.append(response.json()["content_uri"].removeprefix("mxc://"))


async def download_many(target: Target, requests: int, concurrency: int) -> list[float]:
    """Latencies of `requests` downloads, `concurrency` at a time, bodies read and dropped."""
    latencies: list[float] = []
    order = [random.choice(target.media) for _ in range(requests)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers_for(target), timeout=600, limits=limits) as client:

        async def worker(index: int) -> None:
            while order:
                media = order.pop()
                url = f"{target.download_urls[index % len(target.download_urls)]}/{media}"
                started_at = time.perf_counter()
                async with client.stream("GET", url) as response:
                    size = 0
                    async for chunk in response.aiter_raw():
                        size += len(chunk)
                if response.status_code != 200 or size != MIB:
                    raise RuntimeError(f"{target.name}: {response.status_code}, {size} bytes")
                latencies.append(time.perf_counter() - started_at)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return latencies


async def big_download_memory(target: Target, size_mib: int) -> tuple[int, int]:
    """(idle RSS, peak RSS) of the serving process while one `size_mib` file streams out."""
    async with httpx.AsyncClient(headers=headers_for(target), timeout=3600) as client:
        size = size_mib * MIB
        response = await client.post(target.upload_url, content=streamed_body(size),
                                     headers={"Content-Type": "application/octet-stream",
                                              "Content-Length": str(size)})
        if response.status_code != 200:
            raise RuntimeError(f"{target.name}: big upload {response.status_code} {response.text}")
        media = response.json()["content_uri"].removeprefix("mxc://")
        pid = target.pids[0]
        idle = int(statistics.median(rss_bytes(pid) for _ in range(5)))
        received = 0
        with PeakSampler(pid) as sampler:
            async with client.stream("GET", f"{target.download_urls[0]}/{media}") as streamed:
                async for chunk in streamed.aiter_raw():
                    received += len(chunk)
        if received != size:
            raise RuntimeError(f"{target.name}: big download gave {received} of {size} bytes")
    return idle, sampler.peak


async def measure(target: Target, args: argparse.Namespace) -> None:
    await upload_files(target, args.files)
    await download_many(target, min(args.requests, 100), args.concurrency)  # warm up
    cpu_before = cpu_seconds(target.pids)
    started_at = time.perf_counter()
    latencies = await download_many(target, args.requests, args.concurrency)
    elapsed = time.perf_counter() - started_at
    cpu_used = cpu_seconds(target.pids) - cpu_before
    latencies.sort()
    target.results.update({
        "downloads_per_s": args.requests / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "server_cpu_ms_per_download": cpu_used / args.requests * 1000,
    })
    if not args.skip_big:
        idle, peak = await big_download_memory(target, args.big_mib)
        target.results.update({"big_idle_rss_mib": idle / MIB, "big_peak_rss_mib": peak / MIB,
                               "big_rss_growth_mib": (peak - idle) / MIB})
    print(f"  {target.name}: done", flush=True)


def report(targets: list[Target], args: argparse.Namespace) -> None:
    peer = next((t for t in targets if t.name == "synapse"), None)
    print(f"\n1 MiB downloads: {args.requests} requests over {args.files} files, "
          f"{args.concurrency} concurrent clients (mmr/Synapse ratio in brackets)")
    rows = [("downloads_per_s", "downloads/s (= MiB/s)"), ("p50_ms", "p50 ms"),
            ("p95_ms", "p95 ms"), ("server_cpu_ms_per_download", "server CPU ms/download")]
    if not args.skip_big:
        rows += [("big_idle_rss_mib", f"RSS idle MiB ({args.big_mib} MiB file)"),
                 ("big_peak_rss_mib", "RSS peak MiB during it"),
                 ("big_rss_growth_mib", "RSS growth MiB")]
    names = [t.name for t in targets]
    print(f"{'':34}" + "".join(f"{name:>34}" for name in names))
    for key, label in rows:
        cells = []
        for target in targets:
            value = target.results.get(key)
            text = "-" if value is None else f"{value:.1f}"
            if peer is not None and target is not peer and value is not None:
                base = peer.results.get(key)
                if base:
                    text += f" ({value / base:.2f}x)"
            cells.append(f"{text:>34}")
        print(f"{label:34}" + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--big-mib", type=int, default=2048)
    parser.add_argument("--skip-synapse", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    targets: list[Target] = []
    with tempfile.TemporaryDirectory(prefix="mmr-bench-download-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        makers = [lambda: embedded_target(work, args)]
        if not args.skip_cluster:
            makers.append(lambda: cluster_target(work, stack, args))
        if not args.skip_synapse:
            makers.append(lambda: synapse_target(work, args))
        for make in makers:
            # One target at a time, so none competes with another for the cores.
            with make() as target:
                print(f"measuring {target.name} ...", flush=True)
                asyncio.run(measure(target, args))
                targets.append(target)
    report(targets, args)


if __name__ == "__main__":
    main()
