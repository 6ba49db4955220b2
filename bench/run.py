"""`python -m bench run`: start the peers and mmr, run every row against each, print one table.

Targets start once and stay up for the whole run; the rows run in order and, within a row, one
target after another, so no two targets are loaded at once and all of them see the same stretch
of background noise. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from bench import report, workloads
from bench.targets import (
    Homeserver,
    Target,
    cluster_accel_file_target,
    cluster_accel_target,
    describe_versions,
    download_workers_target,
    ensure_synapse_extras,
    homeserver_of,
    mmr_cluster_target,
    mmr_embedded_target,
    nginx_static,
    synapse_target,
)
from bench.workloads import ROW_NAMES, ROWS, Measurement, Settings

DEFAULT_REDIS = "redis://127.0.0.1:6379/1"
# Two capped processes and the load client with nginx fit in two cores with room to spare.
WORKERS_CAP_CORES = 0.4


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the benchmark and print the table")
    run.add_argument("--quick", action="store_true",
                     help="3 s per wrk row, 3 cold thumbnails, a 256 MiB big file")
    run.add_argument("--only", default="",
                     help=f"comma-separated rows (default all): {', '.join(ROW_NAMES)}")
    run.add_argument("--mode", choices=("embedded", "cluster", "both"), default="both")
    run.add_argument("--peers", default="synapse,nginx",
                     help="peers to start: synapse,nginx (default), or 'none'")
    run.add_argument("--duration", type=float, help="seconds per wrk row (overrides --quick)")
    run.add_argument("--big-mib", type=int, help="size of the big upload/download rows")
    run.add_argument("--json", type=Path, default=report.RESULTS_JSON)
    run.add_argument("--no-results-md", action="store_true",
                     help="do not rewrite bench/RESULTS.md nor shared/cluster/capacity.json")
    run.add_argument("--redis", default=os.environ.get("MMR_BENCH_REDIS_URL", DEFAULT_REDIS),
                     help="Redis for the cluster (default %(default)s)")
    run.add_argument("--variant", action="append", default=[], metavar="NAME=FILE",
                     help="also run an embedded mmr with FILE's config sections layered over "
                          "the default, as target mmr-embedded+NAME, on every embedded row "
                          "(A/B of a setting, e.g. bench/variants/metrics-on.yaml)")
    run.add_argument("--workers-cap", type=float, default=WORKERS_CAP_CORES, metavar="CORES",
                     help="the download-workers row again with each process capped at CORES "
                          "of a core (cgroups, needs root; 0: not) (default %(default)s)")
    run.add_argument("--keep-going", action="store_true",
                     help="a failing row is noted and the run goes on (default: stop)")
    again = commands.add_parser("report", help="print the table of a JSON again and rewrite "
                                               "bench/RESULTS.md from it")
    again.add_argument("--json", type=Path, default=report.RESULTS_JSON)
    return top


def rewrite_report(json_path: Path) -> int:
    """RESULTS.md from an earlier run's JSON (after a change of the report's layout)."""
    import json

    document = json.loads(json_path.read_text())
    fields = set(Measurement.__dataclass_fields__)
    results = [Measurement(**{k: v for k, v in m.items() if k in fields})
               for m in document["results"]]
    report.write_outputs(results, document["meta"], json_path, report.RESULTS_MD)
    print(report.text_table(report.HEADER, report.table_rows(results)))
    return 0


def settings_of(args: argparse.Namespace) -> Settings:
    settings = Settings.quick() if args.quick else Settings()
    if args.duration is not None:
        settings.seconds = args.duration
        settings.warmup = False
    if args.big_mib is not None:
        settings.big_mib = args.big_mib
    return settings


def selected_rows(args: argparse.Namespace) -> list[workloads.Row]:
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in ROW_NAMES]
    if unknown:
        raise SystemExit(f"unknown rows: {', '.join(unknown)}; choose among {', '.join(ROW_NAMES)}")
    return [row for row in ROWS if not wanted or row.name in wanted]


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, {platform.platform()}"


def variants(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for item in args.variant:
        name, _, file = item.partition("=")
        if not name or not file:
            raise SystemExit(f"--variant wants NAME=FILE, got {item!r}")
        sections = yaml.safe_load(Path(file).read_text()) or {}
        metrics = sections.get("metrics")
        if isinstance(metrics, dict) and metrics.get("enabled") and "port" not in metrics:
            from tests.infra.http_server import free_port

            metrics["port"] = free_port()  # 9000 may be another run's
        found.append((name, sections))
    return found


def row_targets(row: workloads.Row, targets: dict[str, Target]) -> list[str]:
    """The row's targets that run, each embedded variant right after the embedded default."""
    names = []
    for kind in row.kinds:
        names += [kind] if kind in targets else []
        if kind == "mmr-embedded":
            names += [name for name in targets if name.startswith("mmr-embedded+")]
    return names


def workers_cap(args: argparse.Namespace) -> float | None:
    """The cores each capped --workers process gets, or None (not asked, or no cgroups)."""
    from bench.measure import CpuCapUnavailable, cgroup_cpu_root

    if not args.workers_cap:
        return None
    try:
        cgroup_cpu_root()
    except CpuCapUnavailable as exc:
        print(f"download-workers: no capped run ({exc})", flush=True)
        return None
    return float(args.workers_cap)


def start_targets(stack: ExitStack, work: Path, args: argparse.Namespace,
                  rows: list[workloads.Row]) -> dict[str, Target]:
    """Everything the selected rows need, started once."""
    needed = {kind for row in rows for kind in row.kinds}
    peers = {p.strip() for p in args.peers.split(",")} - {"none", ""}
    targets: dict[str, Target] = {}
    tls: tuple[Path, Path] | None = None
    homeserver: Homeserver | None = None
    synapse_rows = "synapse" in peers or any(r.name.startswith("remote") for r in rows)
    if synapse_rows:
        from tests.infra.synapse import write_self_signed_cert

        ensure_synapse_extras()
        tls = write_self_signed_cert(work)
        print("starting synapse ...", flush=True)
        # Always started with Synapse peers: it is also the homeserver mmr fronts.
        targets["synapse"] = stack.enter_context(synapse_target(work, "synapse", tls))
        homeserver = homeserver_of(targets["synapse"], tls)
        if "synapse" in peers and "synapse-dynamic" in needed:
            print("starting synapse-dynamic ...", flush=True)
            targets["synapse-dynamic"] = stack.enter_context(synapse_target(
                work, "synapse-dynamic", tls,
                {"dynamic_thumbnails": True, "thumbnail_sizes": []}))
        if any(r.name.startswith("remote") for r in rows):
            print("starting synapse-remote ...", flush=True)
            workloads.REMOTE["remote"] = stack.enter_context(
                synapse_target(work, "synapse-remote", tls))
    if "nginx" in peers and "nginx" in needed:
        targets["nginx"] = stack.enter_context(nginx_static(work))
    if any(r.name.startswith("preview") for r in rows):
        site = stack.enter_context(nginx_static(work, "fixture-site"))
        assert site.static_dir is not None
        workloads.write_fixture_site(site.static_dir)
        workloads.FIXTURE_SITE["url"] = site.url
    if args.mode in ("embedded", "both") and "mmr-embedded" in needed:
        print("starting mmr embedded ...", flush=True)
        targets["mmr-embedded"] = stack.enter_context(mmr_embedded_target(work, homeserver))
        for name, variant in variants(args):
            print(f"starting mmr embedded+{name} ...", flush=True)
            targets[f"mmr-embedded+{name}"] = stack.enter_context(
                mmr_embedded_target(work, homeserver, f"mmr-embedded+{name}", variant))
    workers = {f"mmr-workers-{n}": n for n in (1, 2)}
    # Pools started beside the cluster, on its config, Redis and database.
    beside = {"mmr-cluster-accel", "mmr-cluster-accel-file", *workers}
    if args.mode in ("cluster", "both") and ({"mmr-cluster", *beside} & needed):
        print("starting mmr cluster ...", flush=True)
        cluster = stack.enter_context(mmr_cluster_target(work, homeserver, args.redis))
        targets["mmr-cluster"] = cluster
        if "mmr-cluster-accel" in needed:
            print("starting the cluster's download pool with accelRedirect ...", flush=True)
            targets["mmr-cluster-accel"] = stack.enter_context(cluster_accel_target(cluster, work))
        if "mmr-cluster-accel-file" in needed:
            print("starting it again on a file datastore ...", flush=True)
            targets["mmr-cluster-accel-file"] = stack.enter_context(
                cluster_accel_file_target(cluster, work))
        caps = workers_cap(args) if {f"{n}-capped" for n in workers} & needed else None
        for name, count in workers.items():
            if {name, f"{name}-capped"} & needed:
                print(f"starting mmr serve download --workers {count} ...", flush=True)
                target = stack.enter_context(download_workers_target(cluster, work, count))
                target.state["workers"] = count
                targets[name] = target
                if caps:
                    targets[f"{name}-capped"] = dataclasses.replace(
                        target, name=f"{name}-capped",
                        state={**target.state, "cpu_cap": caps})
    if "synapse" in targets and "synapse" not in peers:
        # Started only as the fronted homeserver: not a row target.
        targets["_homeserver"] = targets.pop("synapse")
    return targets


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    rows = selected_rows(args)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    results: list[Measurement] = []
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mmr-bench-") as tmp, ExitStack() as stack:
        targets = start_targets(stack, Path(tmp), args, rows)
        for row in rows:
            for name in row_targets(row, targets):
                target = targets[name]
                print(f"{row.name:18} {name:18} ...", end=" ", flush=True)
                try:
                    m = row.run(target, settings)
                except Exception as exc:
                    if not args.keep_going:
                        raise
                    failures += 1
                    traceback.print_exc()
                    m = Measurement(row.name, name, note=f"failed: {exc}"[:120])
                results.append(m)
                print(f"{report._num(m.requests_per_s)} req/s, "
                      f"{report._num(m.cpu_ms_per_request_all, 2)} ms CPU/req", flush=True)
        versions = describe_versions("synapse" in targets or "_homeserver" in targets)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "versions": versions, "command": command,
        "seconds": time.monotonic() - started, "settings": vars(settings),
        # Other work on the machine shows here: compare runs only at a similar load.
        "load_average": {"start": load_before, "end": os.getloadavg()[0]},
        "rows": {row.name: row.about for row in rows},
    }
    document = report.write_outputs(results, meta, args.json,
                                    None if args.no_results_md else report.RESULTS_MD)
    print()
    print(report.text_table(report.HEADER, report.table_rows(results)))
    print()
    print(report.text_table(("row", "what", "value", "target", "met?"),
                            report.check_rows(document["targets"])))
    if not args.no_results_md and report.write_capacity(document["rates_per_core"], meta):
        print(f"\nrates per core written to {report.CAPACITY_JSON}")
    print(f"\nJSON: {args.json}" + ("" if args.no_results_md else f"; table: {report.RESULTS_MD}"))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    return rewrite_report(args.json)
