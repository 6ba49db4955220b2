"""The `mmr` command: serve, migrate, config check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mmr import (
    admin_archives_cli,  # noqa: F401  (registers datastores, transfer, export, import)
    cluster_cli,
    cluster_local,
)
from mmr.admin_cli import admin_app
from mmr.embedded import embedded_config
from mmr.serve import (
    bind_socket,
    build_embedded_app,
    build_service_app,
    read_config,
    run_uvicorn,
)
from mmr.services import StartupError, check_service_name
from shared.config import ConfigError, config_path_from_env, load_config
from shared.config_reload import reload_on_sighup
from shared.db.migrate import run_migrations
from shared.version import mmr_version

app = typer.Typer(add_completion=False, no_args_is_help=True, help="mmr: a Matrix media repository")
config_app = typer.Typer(help="Configuration tools")
app.add_typer(config_app, name="config")
cluster_cli.register(app)
cluster_local.register(cluster_cli.cluster_app)
app.add_typer(admin_app, name="admin")

ConfigOpt = Annotated[
    str | None, typer.Option("--config", "-c", help="YAML file or directory (or MMR_CONFIG)")
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mmr {mmr_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit")] = False,
) -> None:
    """mmr: a Matrix media repository."""


def _fail(message: str) -> None:
    typer.echo(f"mmr: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def serve(
    service: Annotated[str | None, typer.Argument(help="upload|download|thumbnail|preview|admin; "
                                                  "omit to run every service in one process")] = None,
    config: ConfigOpt = None,
    data: Annotated[Path, typer.Option(help="Data folder of the embedded default")] = Path("mmr-data"),
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port")] = None,
    server_name: Annotated[str, typer.Option(help="Homeserver name (embedded default)")] = "localhost",
    homeserver: Annotated[str | None, typer.Option(help="Homeserver URL for token checks "
                                                   "(embedded default)")] = None,
    drain_seconds: Annotated[int, typer.Option(help="On SIGTERM, seconds requests in flight "
                                               "may take to finish")] = 10,
    workers: Annotated[int, typer.Option(help="Processes of SERVICE on one port, each with its "
                                         "own leased ID (needs MACHINE_ID=auto)")] = 1,
) -> None:
    """Run one service for a cluster, or the embedded default (all services, SQLite, files)."""
    try:
        if service is not None:
            check_service_name(service)  # before the config or MACHINE_ID are looked at
        loaded = read_config(config)
        if service is None:
            cfg = loaded or embedded_config(data, server_name, homeserver)
        else:
            if loaded is None:
                raise StartupError(f"`mmr serve {service}` needs --config FILE (or MMR_CONFIG)")
            cfg = loaded
            if workers != 1:
                from mmr.workers import check_workers, run_workers

                check_workers(service, workers)
                raise typer.Exit(run_workers(service, config, host or cfg.repo.bind_address,
                                             port or cfg.repo.port, workers))
        bind = host or cfg.repo.bind_address
        listen = port or cfg.repo.port
        # Bound before the machine-ID lease is claimed: a port in use is refused holding nothing.
        sock = bind_socket(bind, listen)
        try:
            application = (build_embedded_app(cfg, single_homeserver=loaded is None)
                           if service is None else build_service_app(service, cfg))
        except BaseException:
            sock.close()
            raise
    except StartupError as exc:
        _fail(str(exc))
        return
    path = config_path_from_env(config)
    if path is not None:
        reload_on_sighup(application, path)

    def listening() -> None:
        typer.echo(f"mmr {service or 'embedded default'} listening on http://{bind}:{listen}")
        if service in (None, "admin"):
            typer.echo(f"console: http://{bind}:{listen}/_matrix/media/unstable/admin/console/")
        if cfg.shared_secret_auth.enabled and loaded is None:
            typer.echo(f"token: {cfg.shared_secret_auth.token}")

    run_uvicorn(application, bind, listen, cfg.repo, drain_seconds, sock=sock, on_listening=listening)


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Bring the database schema up to date (under a cluster-wide lock)."""
    try:
        cfg = read_config(config)
    except StartupError as exc:
        _fail(str(exc))
        return
    if cfg is None:
        _fail("`mmr migrate` needs --config FILE (or MMR_CONFIG)")
        return
    typer.echo(f"database schema at revision {run_migrations(cfg.database.url)}")


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="YAML file or directory")]) -> None:
    """Validate a configuration and print every problem, naming its key."""
    try:
        load_config(file)
    except ConfigError as exc:
        typer.echo(f"{file}: invalid configuration", err=True)
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{file}: OK")


def main() -> None:
    app()


def serve_service_main(service: str) -> None:
    """Entry for `python -m services.<name>`: same as `mmr serve <name>`."""
    app(["serve", service, *sys.argv[1:]])
