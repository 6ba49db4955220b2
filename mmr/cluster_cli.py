"""`mmr cluster status` (the live cluster as a table, with the rules it breaks) and `mmr plan`
(how many processes a deployment needs)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shared.cluster.membership import cluster_report
from shared.cluster.presence import open_lease_store
from shared.cluster.sizing import (
    CAPACITY_MODEL_PATH,
    MMR_HOMESERVERS_PER_INSTANCE,
    homeservers_per_core,
    mmr_rule_of_thumb,
    plan_pools,
)
from shared.config import ConfigError, MmrConfig, load_config
from shared.coordination.leases import LeaseStoreUnavailable
from shared.services import POOLS

cluster_app = typer.Typer(help="The processes of a cluster", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")
    app.command("plan")(plan)


async def _members(config: MmrConfig) -> list[dict[str, Any]]:
    store = await open_lease_store(config)
    try:
        return await store.members()
    finally:
        await store.close()


def _age(then: Any, now: float) -> str:
    if not isinstance(then, int | float) or then <= 0:
        return "-"
    seconds = max(0.0, now - then)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def render(report: dict[str, Any], console: Console, now: float | None = None) -> None:
    now = time.time() if now is None else now
    table = Table(title=f"mmr cluster: {len(report['members'])} live processes")
    for column in ("machine", "service", "role", "version", "host", "pid", "started",
                   "heartbeat", "config"):
        table.add_column(column, justify="right" if column in ("machine", "pid") else "left")
    for m in report["members"]:
        table.add_row(str(m.get("machine_id")), str(m.get("service")), str(m.get("role")),
                      str(m.get("version")), str(m.get("host")), str(m.get("pid")),
                      _age(m.get("started"), now), _age(m.get("last_heartbeat"), now),
                      str(m.get("config")))
    console.print(table)
    if not report["problems"]:
        console.print("no problems found")
    for problem in report["problems"]:
        colour = "red" if problem["severity"] == "error" else "yellow"
        console.print(f"[{colour}]{problem['severity']}[/{colour}] {problem['kind']}: "
                      f"{problem['message']}", highlight=False)


@cluster_app.command("status")
def status(
    config: Annotated[Path, typer.Option("--config", "-c", help="The cluster's config file")],
) -> None:
    """Show every live process and flag version skew, a missing machine 0, services without a
    process, configs that differ from machine 0's, and file datastores used from several hosts.
    Exits 1 when a problem of severity `error` is found."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"mmr: invalid config {config}:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    if not cfg.redis.enabled:
        typer.echo("mmr: this config has no Redis (redis.enabled): a single embedded process has "
                   "no cluster to show", err=True)
        raise typer.Exit(2)
    try:
        members = asyncio.run(_members(cfg))
    except LeaseStoreUnavailable as exc:
        typer.echo(f"mmr: cannot reach Redis (redis.url): {exc}", err=True)
        raise typer.Exit(2) from exc
    report = cluster_report(members)
    render(report, Console(width=160))
    if any(p["severity"] == "error" for p in report["problems"]):
        raise typer.Exit(1)


def _pairs(text: str | None) -> dict[str, float]:
    """`upload=40,download=300` -> {"upload": 40.0, "download": 300.0}."""
    if not text:
        return {}
    result = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name.strip() not in POOLS:
            raise typer.BadParameter(f"{name!r}: choose among {', '.join(POOLS)}")
        result[name.strip()] = float(value)
    return result


def plan(
    homeservers: Annotated[int, typer.Option(min=1, help="Homeservers the deployment serves")],
    rate_per_core: Annotated[str | None, typer.Option(
        help="Requests/s one core sustains per pool, e.g. upload=40,thumbnail=25")] = None,
    load_per_homeserver: Annotated[str | None, typer.Option(
        help="Peak requests/s one homeserver sends per pool, e.g. download=0.5")] = None,
) -> None:
    """How many processes to run: matrix-media-repo's rule of thumb and a per-pool model."""
    console = Console(width=120)
    console.print(f"matrix-media-repo's rule of thumb (one instance per "
                  f"{MMR_HOMESERVERS_PER_INSTANCE} homeservers): "
                  f"{mmr_rule_of_thumb(homeservers)} instance(s) for {homeservers} homeservers")
    plans = plan_pools(homeservers, _pairs(load_per_homeserver), _pairs(rate_per_core))
    table = Table(title="mmr model: one core per process, 60% target utilisation, at least 2 each")
    for column in ("pool", "peak req/s", "replicas", "MACHINE_ID range", "range holds"):
        table.add_column(column, justify="left" if column in ("pool", "MACHINE_ID range") else "right")
    table.add_row("admin", "-", "1 (+1 standby)", "0", "1")
    for p in plans:
        table.add_row(p.service, f"{p.load:.1f}", str(p.replicas), p.machine_ids,
                      str(p.capacity) + ("" if p.fits else "  (too small: widen it)"))
    console.print(table)
    per_core = homeservers_per_core(_pairs(load_per_homeserver), _pairs(rate_per_core))
    console.print(f"total: {1 + sum(p.replicas for p in plans)} processes (+1 standby machine 0). "
                  f"One core serving every pool carries about {per_core:,.0f} homeservers.")
    console.print(f"Rates per core and loads per homeserver: {CAPACITY_MODEL_PATH} (written by "
                  "`python -m bench run`; docs/CAPACITY.md explains them). Measure yours and "
                  "pass --rate-per-core and --load-per-homeserver.")
