"""`mmr cluster up`, `mmr cluster down`, `mmr cluster await-admin`: commands of the `cluster`
group (mmr/cli.py registers them; `register` adds them to any typer group)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

FolderOpt = Annotated[Path, typer.Option("--dir", help="The cluster's folder: config, data, "
                                         "logs and its state file")]
DEFAULT_FOLDER = Path("mmr-cluster")


def up(
    folder: FolderOpt = DEFAULT_FOLDER,
    upload: Annotated[int, typer.Option(help="upload processes")] = 2,
    download: Annotated[int, typer.Option(help="download processes")] = 2,
    thumbnail: Annotated[int, typer.Option(help="thumbnail processes")] = 2,
    preview: Annotated[int, typer.Option(help="URL preview processes")] = 1,
    port: Annotated[int, typer.Option(help="nginx's port on 127.0.0.1 (0: any free port)")] = 8080,
    server_name: Annotated[str, typer.Option(help="The homeserver name media is for")] = "localhost",
    postgres: Annotated[str | None, typer.Option(help="A PostgreSQL admin URL to use instead of "
                                                 "the machine's or a private one")] = None,
    redis: Annotated[str | None, typer.Option(help="A Redis URL to use instead of the "
                                              "machine's or a private one")] = None,
    extra_config: Annotated[Path | None, typer.Option(help="YAML merged over the generated "
                                                      "config")] = None,
) -> None:
    """Start a cluster on this machine: PostgreSQL, Redis, SeaweedFS, machine 0 and the pools
    behind nginx."""
    from mmr.devcluster.cluster import ClusterError, UpOptions
    from mmr.devcluster.cluster import up as cluster_up

    counts = {"upload": upload, "download": download, "thumbnail": thumbnail, "preview": preview}
    options = UpOptions(folder, counts, port, server_name, postgres, redis, extra_config)
    try:
        state = cluster_up(options)
    except (ClusterError, RuntimeError, OSError) as exc:
        typer.echo(f"mmr cluster up: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"mmr cluster: {len(state.members)} processes behind nginx")
    typer.echo(f"url: {state.url}")
    typer.echo(f"token: {state.token}")
    typer.echo(f"logs: {state.logs}")
    for member in state.members:
        typer.echo(f"  {member.service:<9} MACHINE_ID {member.machine_id:<4} "
                   f"http://127.0.0.1:{member.port}  metrics :{member.metrics_port}")
    typer.echo(f"stop it with: mmr cluster down --dir {folder}")


def down(
    folder: FolderOpt = DEFAULT_FOLDER,
    purge: Annotated[bool, typer.Option(help="Also delete the cluster's data: its database "
                                        "and its folder")] = False,
) -> None:
    """Stop exactly what `mmr cluster up` started in that folder."""
    from mmr.devcluster.cluster import down as cluster_down

    stopped = cluster_down(folder, purge)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else f"nothing running in {folder}")


def await_admin(
    url: Annotated[str, typer.Option(help="The admin service's base URL")] = "http://mmr-admin:8000",
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 600,
) -> None:
    """Wait until machine 0 serves this release (an init container of the pools: machine 0
    rolls out first). After `timeout` it lets the pod start anyway, saying so."""
    import httpx

    from shared.version import mmr_version

    wanted, deadline, seen = mmr_version(), time.monotonic() + timeout, "nothing"
    while time.monotonic() < deadline:
        try:
            seen = httpx.get(f"{url}/_matrix/media/version", timeout=5).json().get("Version")
            if seen == wanted:
                typer.echo(f"machine 0 runs {wanted}")
                return
        except (httpx.HTTPError, ValueError) as exc:
            seen = type(exc).__name__
        time.sleep(2)
    typer.echo(f"machine 0 still answers {seen!r}, not {wanted!r}, after {timeout:.0f} s: "
               "starting anyway", err=True)


def register(group: typer.Typer) -> None:
    """Add these commands to the `cluster` group."""
    group.command("up")(up)
    group.command("down")(down)
    group.command("await-admin")(await_admin)
