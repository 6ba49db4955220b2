"""Starting a service (or all of them) under uvicorn."""

from __future__ import annotations

import asyncio

import uvicorn
from fastapi import FastAPI

from mmr.embedded import all_routers, all_start_hooks
from mmr.services import StartupError, service_module
from shared.cluster.machine_lease import MachineIdInUse, NoFreeMachineId
from shared.cluster.presence import Claim, claim_machine_id
from shared.cluster.versions import VersionRefused
from shared.config import ConfigError, MmrConfig, RepoConfig, config_path_from_env, load_config
from shared.coordination.leases import LeaseStoreUnavailable
from shared.ids.machine_id import MachineIdError, resolve_machine_id
from shared.logging import setup_logging
from shared.web.app import make_app
from shared.web.http_protocol import HeadLimits, protocol_with_limits


def read_config(config: str | None) -> MmrConfig | None:
    path = config_path_from_env(config)
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise StartupError(f"invalid config {path}:\n{exc}") from exc


def machine_id_for(service: str) -> int | None:
    """The MACHINE_ID asked for; None for `auto`."""
    try:
        return resolve_machine_id(service)
    except MachineIdError as exc:
        raise StartupError(str(exc)) from exc


def claim_for(service: str, config: MmrConfig) -> Claim:
    """Claim this process's machine-ID lease before the server starts, so that a refusal is one
    clear line and the log lines carry the real (maybe automatic) machine ID."""
    requested = machine_id_for(service)
    try:
        return asyncio.run(claim_machine_id(config, service, requested))
    except (MachineIdInUse, NoFreeMachineId, VersionRefused) as exc:
        raise StartupError(str(exc)) from exc
    except LeaseStoreUnavailable as exc:
        raise StartupError(f"cannot reach Redis to claim MACHINE_ID (redis.url): {exc}") from exc


def build_service_app(service: str, config: MmrConfig) -> FastAPI:
    claim = claim_for(service, config)
    setup_logging(service, claim.machine_id, config.repo)
    module = service_module(service)
    return make_app(service, module.ROUTERS, config=config, machine_id=claim.machine_id,
                    start_hooks=getattr(module, "START_HOOKS", []), claim=claim)


def build_embedded_app(config: MmrConfig, single_homeserver: bool) -> FastAPI:
    claim = claim_for("embedded", config)
    setup_logging("embedded", claim.machine_id, config.repo)
    return make_app(
        "embedded", all_routers(), config=config, machine_id=claim.machine_id,
        single_homeserver=single_homeserver, start_hooks=all_start_hooks(), claim=claim,
    )


def run_uvicorn(app: FastAPI, host: str, port: int, repo: RepoConfig,
                drain_seconds: int = 10, fd: int | None = None) -> None:
    """Serve on host:port, or on the inherited listening socket `fd` (a `--workers` child), until
    SIGTERM/SIGINT; then stop accepting and give requests in flight (a long upload) up to
    `drain_seconds` to finish before they are cut."""
    # Our httptools protocol: bounded request heads, Matrix JSON for requests it cannot parse.
    http = protocol_with_limits(HeadLimits.from_config(repo))
    where: dict[str, object] = {"fd": fd} if fd is not None else {"host": host, "port": port}
    uvicorn.run(app, **where, log_level=repo.log_level, server_header=False,  # type: ignore[arg-type]
                proxy_headers=False, timeout_graceful_shutdown=drain_seconds, http=http,
                # uvicorn's own lines (access lines included) go through the project's handlers.
                log_config=None)

