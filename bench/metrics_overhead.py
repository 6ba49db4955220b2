"""What Prometheus metrics cost a request: warm thumbnails with `metrics.enabled` off and on.

    .venv/bin/python bench/metrics_overhead.py [--warm 2000] [--rounds 6] [--seconds 10]
                                               [--concurrency 8]

Two embedded mmr processes (`mmr serve --config`: SQLite, a file datastore), identical but for
`metrics.enabled`, each serving a 96x96 crop of the same photo from memory: the cheapest request
mmr answers, so the one where a per-request cost shows most. Measured, the two taking turns so
that both see the same background noise:
* warm latency on one keep-alive connection, p50 and p99;
* warm thumbnails per second with `--concurrency` connections, and the server's own CPU time per
  thumbnail (immune to noise from the client sharing the machine).
The metrics process is scraped at the end to show that it counted every request it served.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.rig import SECRET, mmr_embedded  # noqa: E402
from bench.thumbnail_bench import (  # noqa: E402
    RawConnection,
    Target,
    percentile,
    photo,
    timed_get,
    upload,
    warm_rates,
)
from tests.infra.http_server import free_port  # noqa: E402

SIZE = "96x96 crop"
ROUTE = "/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}"


def start(stack: ExitStack, work: Path, name: str, metrics: dict[str, object]) -> Target:
    folder = work / name
    folder.mkdir()
    process = stack.enter_context(mmr_embedded(folder, {"metrics": metrics}))
    return Target(name, process.url, SECRET, process.process.pid)


async def latencies(target: Target, count: int) -> list[float]:
    async with RawConnection(target.url) as connection:
        request = connection.request(target.path(target.warm_media, SIZE), target.token)
        return [await timed_get(connection, request) for _ in range(count)]


async def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, list[float]]:
    """Latencies per target; rates and CPU per thumbnail in `target.numbers`. Each half of the
    runs goes first in turn: whichever server runs second measured a few percent slower."""
    seen: dict[str, list[float]] = {t.name: [] for t in targets}
    for target in targets:  # the first requests start worker processes and fill caches
        await latencies(target, 50)
    for turn in range(args.rounds):
        for target in targets if turn % 2 == 0 else targets[::-1]:
            seen[target.name] += await latencies(target, args.warm // args.rounds)
    halves: list[dict[str, dict[str, float]]] = []
    for order in (targets, targets[::-1]):
        await warm_rates(order, SIZE, args.seconds / 2, args.concurrency)
        halves.append({t.name: dict(t.numbers) for t in targets})
    for target in targets:
        for key in target.numbers:
            target.numbers[key] = sum(half[target.name][key] for half in halves) / len(halves)
    return seen


def thumbnails_counted(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "media_http_requests_total" and sample.labels["route"] == ROUTE)


def report(off: Target, on: Target, seen: dict[str, list[float]]) -> None:
    print(f"\n{'':28} {'metrics off':>14} {'metrics on':>14}")
    for label, fraction in (("warm latency p50 (us)", 0.5), ("warm latency p99 (us)", 0.99)):
        a, b = (percentile(seen[t.name], fraction) * 1e6 for t in (off, on))
        print(f"{label:28} {a:14.0f} {b:14.0f}   ({b - a:+.0f} us)")
    rate_key, cpu_key = f"warm {SIZE} rate", f"warm {SIZE} cpu"
    print(f"{'thumbnails/s':28} {off.numbers[rate_key]:14.0f} {on.numbers[rate_key]:14.0f}   "
          f"({on.numbers[rate_key] / off.numbers[rate_key]:.3f}x)")
    print(f"{'server CPU per thumbnail (us)':28} {off.numbers[cpu_key]:14.0f} "
          f"{on.numbers[cpu_key]:14.0f}   ({on.numbers[cpu_key] - off.numbers[cpu_key]:+.0f} us)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm", type=int, default=2000, help="warm latency requests per server")
    parser.add_argument("--rounds", type=int, default=6, help="turns the latency runs take")
    parser.add_argument("--seconds", type=float, default=10.0, help="warm throughput duration")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmr-metrics-bench-"))
    metrics_port = free_port()
    source = photo(1600, 1200)
    try:
        with ExitStack() as stack:
            off = start(stack, work, "off", {"enabled": False})
            on = start(stack, work, "on", {"enabled": True, "bindAddress": "127.0.0.1",
                                           "port": metrics_port})
            for target in (off, on):
                target.warm_media = upload(target, source)
            seen = asyncio.run(measure([off, on], args))
            report(off, on, seen)
            print(f"\nthumbnail requests counted on /metrics: {thumbnails_counted(metrics_port):.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
