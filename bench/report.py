"""The one table, the target checks, the JSON, bench/RESULTS.md and the capacity model's rates."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.workloads import Measurement

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCH_DIR / "results" / "latest.json"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
CAPACITY_JSON = Path(__file__).resolve().parents[1] / "shared" / "cluster" / "capacity.json"

PEERS = ("synapse", "synapse-dynamic", "nginx")


def _find(results: Sequence[Measurement], row: str, target: str) -> Measurement | None:
    return next((m for m in results if m.row == row and m.target == target), None)


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def peer_ratios(results: Sequence[Measurement], m: Measurement) -> dict[str, dict[str, float | None]]:
    """For an mmr measurement: requests/s and CPU/request relative to each peer in its row."""
    ratios: dict[str, dict[str, float | None]] = {}
    if not m.target.startswith("mmr"):
        return ratios
    # A variant is compared with the default it varies, as well as with the peers.
    bases = ("mmr-embedded", *PEERS) if m.target.startswith("mmr-embedded+") else PEERS
    for peer in bases:
        other = _find(results, m.row, peer)
        if other is None:
            continue
        ratios[peer] = {"requests_per_s": _ratio(m.requests_per_s, other.requests_per_s),
                        "cpu_ms_per_request": _ratio(m.cpu_ms_per_request_all,
                                                     other.cpu_ms_per_request_all)}
    return ratios


# --- targets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One target: `value(results)` compared with `limit` (`at_most` or at least); a `limit`
    of None is a figure shown beside a target to read it by, not a target itself."""

    row: str
    what: str
    limit: float | None
    at_most: bool
    value: Callable[[Sequence[Measurement]], float | None]

    def evaluate(self, results: Sequence[Measurement]) -> dict[str, Any]:
        value = self.value(results)
        if self.limit is None:
            return {"row": self.row, "what": self.what, "value": value, "target": "(for reading)",
                    "met": None}
        met = None if value is None else (value <= self.limit if self.at_most else value >= self.limit)
        return {"row": self.row, "what": self.what, "value": value,
                "target": f"{'<=' if self.at_most else '>='} {self.limit:g}", "met": met}


def _field(row: str, target: str, name: str) -> Callable[[Sequence[Measurement]], float | None]:
    def get(results: Sequence[Measurement]) -> float | None:
        m = _find(results, row, target)
        value = None if m is None else getattr(m, name)
        return float(value) if value is not None else None
    return get


def _over(row: str, target: str, peer: str, name: str, peer_name: str | None = None,
          peer_row: str | None = None) -> Callable[[Sequence[Measurement]], float | None]:
    def get(results: Sequence[Measurement]) -> float | None:
        return _ratio(_field(row, target, name)(results),
                      _field(peer_row or row, peer, peer_name or name)(results))
    return get


def _lowest(row: str, targets: Sequence[str],
            name: str) -> Callable[[Sequence[Measurement]], float | None]:
    def get(results: Sequence[Measurement]) -> float | None:
        values = [_field(row, target, name)(results) for target in targets]
        return None if None in values else min(v for v in values if v is not None)
    return get


CPU = "cpu_ms_per_request_all"  # the serving pool plus the cluster's nginx and SeaweedFS
POOL_CPU = "cpu_ms_per_request"  # the serving pool's own processes
ACCEL = "mmr-cluster-accel"
ACCEL_FILE = "mmr-cluster-accel-file"


def _behind_nginx(target: str, store: str) -> tuple[Check, ...]:
    """The issue's "behind nginx" targets are for an ingress that moves the bytes: the cluster
    with downloads.accelRedirect on. The media service's CPU is its pool's own; the CPU all
    beside it adds what nginx and SeaweedFS spend sending those bytes instead."""
    return (
        Check("download-1m", f"cluster+accel ({store}) req/s ÷ nginx static's", 0.5, False,
              _over("download-1m", target, "nginx", "requests_per_s")),
        Check("download-1m", f"cluster+accel ({store}) download-pool CPU/req ÷ Synapse's", 0.1,
              True, _over("download-1m", target, "synapse", POOL_CPU, CPU)),
        Check("download-1m", f"cluster+accel ({store}) CPU all/req (pool + nginx + SeaweedFS) "
              "÷ Synapse's", None, True, _over("download-1m", target, "synapse", CPU)),
    )


# S3 is the cluster's own datastore, but its SeaweedFS shares this machine's cores with nginx
# and the client; with a file datastore nginx sends from disk with sendfile, as nginx-static.
BEHIND_NGINX = (*_behind_nginx(ACCEL, "S3"), *_behind_nginx(ACCEL_FILE, "file datastore"))


# "Two download processes behind nginx give at least 1.7x the throughput of one, per unit of
# client load": the same client (wrk, 32 connections) on both, each process capped at the same
# fraction of a core so that neither shares its CPU with the client (bench/README.md). Beside
# it, uncapped, the raw ratio and the CPU each request took (throughput per CPU-second).
WORKERS: tuple[Check, ...] = (
    Check("download-workers", "--workers 2 req/s ÷ --workers 1's, each process capped", 1.7,
          False, _over("download-workers", "mmr-workers-2-capped", "mmr-workers-1-capped",
                       "requests_per_s")),
    Check("download-workers", "the capped runs' lowest share of their cap used", None, False,
          _lowest("download-workers", ("mmr-workers-1-capped", "mmr-workers-2-capped"),
                  "cpu_cap_used")),
    Check("download-workers", "--workers 2 req/s ÷ --workers 1's, uncapped (raw)", None, False,
          _over("download-workers", "mmr-workers-2", "mmr-workers-1", "requests_per_s")),
    Check("download-workers", "--workers 2 req/s per pool CPU-second ÷ --workers 1's", None,
          False, _over("download-workers", "mmr-workers-1", "mmr-workers-2", POOL_CPU)),
)


def _cluster_over_embedded(row: str) -> tuple[Check, ...]:
    """"Cluster: CPU per download of stored media at most 1.5x the embedded default's": the
    embedded default is one process (no ingress, no object store), so its CPU is all there is;
    the cluster's is given both ways, its download pool alone (the target: what the service
    costs) and with its nginx and SeaweedFS (what the deployment costs), and with
    accelRedirect on for reading."""
    return (
        Check(row, "cluster download-pool CPU/req ÷ embedded's", 1.5, True,
              _over(row, "mmr-cluster", "mmr-embedded", POOL_CPU, CPU)),
        Check(row, "cluster CPU all/req (pool + nginx + SeaweedFS) ÷ embedded's", 1.5, True,
              _over(row, "mmr-cluster", "mmr-embedded", CPU)),
        Check(row, "cluster+accel (S3) download-pool CPU/req ÷ embedded's", None, True,
              _over(row, ACCEL, "mmr-embedded", POOL_CPU, CPU)),
        Check(row, "cluster+accel (S3) CPU all/req ÷ embedded's", None, True,
              _over(row, ACCEL, "mmr-embedded", CPU)),
        Check(row, "cluster+accel (file datastore) CPU all/req ÷ embedded's", None, True,
              _over(row, ACCEL_FILE, "mmr-embedded", CPU)),
    )


CHECKS: tuple[Check, ...] = (
    Check("download-10k", "embedded CPU/req ÷ Synapse's", 0.25, True,
          _over("download-10k", "mmr-embedded", "synapse", CPU)),
    Check("download-10k", "embedded req/s ÷ Synapse's", 3, False,
          _over("download-10k", "mmr-embedded", "synapse", "requests_per_s")),
    Check("download-1m", "embedded CPU/req ÷ Synapse's", 0.5, True,
          _over("download-1m", "mmr-embedded", "synapse", CPU)),
    *BEHIND_NGINX,
    Check("upload-1m", "embedded CPU/req ÷ Synapse's", 0.5, True,
          _over("upload-1m", "mmr-embedded", "synapse", CPU)),
    Check("upload-1m", "cluster CPU/req ÷ Synapse's", 0.5, True,
          _over("upload-1m", "mmr-cluster", "synapse", CPU)),
    Check("thumb-first", "embedded first thumbnail ms", 150, True,
          _field("thumb-first", "mmr-embedded", "p50_ms")),
    Check("thumb-first", "cluster first thumbnail ms", 150, True,
          _field("thumb-first", "mmr-cluster", "p50_ms")),
    Check("thumb-cold-crop", "Synapse dynamic p50 ÷ embedded p50", 4, False,
          _over("thumb-cold-crop", "synapse-dynamic", "mmr-embedded", "p50_ms")),
    Check("thumb-cold-scale", "Synapse dynamic p50 ÷ embedded p50", 4, False,
          _over("thumb-cold-scale", "synapse-dynamic", "mmr-embedded", "p50_ms")),
    Check("thumb-warm-crop", "embedded req/s ÷ Synapse dynamic's", 5, False,
          _over("thumb-warm-crop", "mmr-embedded", "synapse-dynamic", "requests_per_s")),
    Check("thumb-warm-scale", "embedded req/s ÷ Synapse dynamic's", 5, False,
          _over("thumb-warm-scale", "mmr-embedded", "synapse-dynamic", "requests_per_s")),
    Check("preview-cached", "embedded req/s ÷ Synapse's", 3, False,
          _over("preview-cached", "mmr-embedded", "synapse", "requests_per_s")),
    *_cluster_over_embedded("download-10k"),
    *_cluster_over_embedded("download-1m"),
    *WORKERS,
    Check("upload-1g", "embedded RSS growth MiB", 64, True,
          _field("upload-1g", "mmr-embedded", "rss_growth_mib")),
    Check("upload-1g", "cluster RSS growth MiB", 64, True,
          _field("upload-1g", "mmr-cluster", "rss_growth_mib")),
    Check("download-1g", "embedded RSS growth MiB", 64, True,
          _field("download-1g", "mmr-embedded", "rss_growth_mib")),
    Check("download-1g", "cluster RSS growth MiB", 64, True,
          _field("download-1g", "mmr-cluster", "rss_growth_mib")),
    Check("download-1g", "cluster+accel RSS growth MiB", 64, True,
          _field("download-1g", ACCEL, "rss_growth_mib")),
    Check("download-1g", "cluster+accel (file datastore) RSS growth MiB", 64, True,
          _field("download-1g", ACCEL_FILE, "rss_growth_mib")),
)


def evaluate(results: Sequence[Measurement]) -> list[dict[str, Any]]:
    return [c.evaluate(results) for c in CHECKS if c.value(results) is not None]


# --- the table ----------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _ratio_text(ratios: dict[str, dict[str, float | None]]) -> str:
    parts = []
    for peer, ratio in ratios.items():
        rps, cpu = ratio["requests_per_s"], ratio["cpu_ms_per_request"]
        short = {"synapse": "syn", "synapse-dynamic": "syn-dyn", "nginx": "nginx",
                 "mmr-embedded": "default"}[peer]
        parts.append(f"{short} {_num(rps, 2)}x r/s, {_num(cpu, 2)}x cpu")
    return "; ".join(parts)


HEADER = ("row", "target", "req/s", "MB/s", "p50 ms", "p99 ms", "CPU ms/req", "CPU all",
          "peak RSS MiB", "RSS +MiB", "vs peers (mmr/peer)", "note")


def table_rows(results: Sequence[Measurement]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for m in results:
        rows.append((m.row, m.target, _num(m.requests_per_s), _num(m.mb_per_s),
                     _num(m.p50_ms, 2), _num(m.p99_ms, 2), _num(m.cpu_ms_per_request, 2),
                     _num(m.cpu_ms_per_request_all, 2), _num(m.peak_rss_mib, 0),
                     _num(m.rss_growth_mib, 0), _ratio_text(peer_ratios(results, m)), m.note))
    return rows


def check_rows(checks: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(c["row"], c["what"], _num(c["value"], 2), c["target"],
             "-" if c["met"] is None else ("yes" if c["met"] else "NO")) for c in checks]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False))
             for line in (header, *rows)]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the capacity model's rates -----------------------------------------------------------------

# Which rows stand for a pool's traffic, with weights (what share of that pool's requests look
# like the row): docs/CAPACITY.md says why.
POOL_MIX: dict[str, dict[str, float]] = {
    "upload": {"upload-1m": 0.8, "upload-photo": 0.2},
    "download": {"download-10k": 0.4, "download-1m": 0.5, "remote-cached": 0.1},
    "thumbnail": {"thumb-warm-crop": 0.55, "thumb-warm-scale": 0.35, "thumb-cold-crop": 0.05,
                  "thumb-cold-scale": 0.05},
    "preview": {"preview-cached": 0.7, "preview-cold": 0.3},
}


def rates_per_core(results: Sequence[Measurement]) -> dict[str, dict[str, Any]]:
    """Requests/s one core sustains per pool: 1000 / (the mix's server CPU ms per request),
    from the cluster where it ran (its pools are what `mmr plan` sizes), else embedded."""
    rates: dict[str, dict[str, Any]] = {}
    for pool, mix in POOL_MIX.items():
        for target in ("mmr-cluster", "mmr-embedded"):
            found = {row: _find(results, row, target) for row in mix}
            cpu = {row: m.cpu_ms_per_request for row, m in found.items()
                   if m is not None and m.cpu_ms_per_request}
            if not cpu:
                continue
            weight = sum(mix[row] for row in cpu)
            ms = sum(mix[row] * cpu[row] for row in cpu) / weight
            rates[pool] = {"requests_per_s_per_core": round(1000 / ms, 1),
                           "cpu_ms_per_request": round(ms, 3), "from": target,
                           "rows": sorted(cpu)}
            break
    return rates


def write_capacity(rates: dict[str, dict[str, Any]], meta: dict[str, Any]) -> bool:
    """Merge measured pools into shared/cluster/capacity.json (what `mmr plan` reads); pools
    this run did not measure keep their earlier figures."""
    if not rates:
        return False
    current = json.loads(CAPACITY_JSON.read_text()) if CAPACITY_JSON.exists() else {}
    pools = current.get("rate_per_core", {})
    sources = current.get("measured", {})
    for pool, rate in rates.items():
        pools[pool] = rate["requests_per_s_per_core"]
        sources[pool] = {**rate, "date": meta["date"], "command": meta["command"]}
    current["rate_per_core"] = pools
    current["measured"] = sources
    CAPACITY_JSON.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    return True


def homeservers_per_core(rates: dict[str, dict[str, Any]]) -> float:
    """What the capacity model makes of this run's rates: homeservers one core carries with
    every pool sharing it (`mmr plan`'s sum, docs/CAPACITY.md's loads)."""
    from shared.cluster import sizing

    measured = {pool: float(rate["requests_per_s_per_core"]) for pool, rate in rates.items()}
    return sizing.homeservers_per_core(rate_per_core=measured)


# --- writing it all -----------------------------------------------------------------------------


def write_outputs(results: Sequence[Measurement], meta: dict[str, Any],
                  json_path: Path = RESULTS_JSON, markdown_path: Path | None = RESULTS_MD) -> dict[str, Any]:
    checks = evaluate(results)
    document = {
        "meta": meta,
        "results": [{**m.as_dict(), "ratios": peer_ratios(results, m)} for m in results],
        "targets": checks,
        "rates_per_core": rates_per_core(results),
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    if markdown_path is not None:
        markdown_path.write_text(markdown(document, results))
    return document


def markdown(document: dict[str, Any], results: Sequence[Measurement]) -> str:
    meta = document["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    rates = document["rates_per_core"]
    per_core = f"{homeservers_per_core(rates):,.0f}" if rates else "-"
    load = meta.get("load_average")
    load = (f"; 1-minute load average {load['start']:.1f} at the start, {load['end']:.1f} at the end"
            if load else "")
    rate_lines = "\n".join(
        f"| {pool} | {r['requests_per_s_per_core']} | {r['cpu_ms_per_request']} | {r['from']}: "
        f"{', '.join(r['rows'])} |" for pool, r in rates.items())
    return f"""# Benchmark results

Generated by `bench/` (see bench/README.md); do not edit by hand.

- Date: {meta['date']}
- Machine: {meta['machine']}
- Versions: {versions}
- Command: `{meta['command']}`
- Wall time: {meta['seconds']:.0f} s{load}

The machine was shared with other work while this ran: compare figures within this table only,
and prefer the CPU columns (server CPU per request, from /proc of each server's processes,
children included) over requests/s. "CPU ms/req" is the serving pool's own processes; "CPU all"
adds the cluster's nginx and SeaweedFS. Ratios are mmr / peer: requests/s (higher is better)
and CPU all per request (lower is better).

{markdown_table(HEADER, table_rows(results))}

## Targets

{markdown_table(("row", "what", "value", "target", "met?"), check_rows(document["targets"]))}

## Requests per second per core (the capacity model's input, docs/CAPACITY.md)

| pool | req/s per core | CPU ms/req | from |
|---|---|---|---|
{rate_lines}

With docs/CAPACITY.md's traffic per homeserver, one core serving every pool carries about
{per_core} homeservers at 60 % utilisation (`mmr plan --homeservers N` sizes each pool from the
same figures).
"""
