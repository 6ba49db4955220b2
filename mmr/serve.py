"""Starting a service (or all of them) under uvicorn."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from types import ModuleType

import uvicorn
from fastapi import FastAPI

from shared.cluster.machine_lease import MachineIdInUse, NoFreeMachineId
from shared.cluster.presence import Claim, claim_machine_id
from shared.cluster.versions import VersionRefused
from shared.config import ConfigError, MmrConfig, RepoConfig, config_path_from_env, load_config
from shared.coordination.leases import LeaseStoreUnavailable
from shared.ids.machine_id import MachineIdError, resolve_machine_id
from shared.logging import setup_logging
from shared.web.app import make_app
from shared.web.http_protocol import HeadLimits, protocol_with_limits

SERVICES = ("upload", "download", "thumbnail", "preview", "admin")


class StartupError(Exception):
    """The process cannot start; the message says why and how to fix it."""


def service_module(name: str) -> ModuleType:
    if name not in SERVICES:
        raise StartupError(f"unknown service {name!r}: choose one of {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{name}.app")


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
    from mmr.embedded import all_routers, all_start_hooks

    claim = claim_for("embedded", config)
    setup_logging("embedded", claim.machine_id, config.repo)
    return make_app(
        "embedded", all_routers(), config=config, machine_id=claim.machine_id,
        single_homeserver=single_homeserver, start_hooks=all_start_hooks(), claim=claim,
    )


def run_uvicorn(app: FastAPI, host: str, port: int, repo: RepoConfig) -> None:
    # Our httptools protocol: bounded request heads, Matrix JSON for requests it cannot parse.
    http = protocol_with_limits(HeadLimits.from_config(repo))
    uvicorn.run(app, host=host, port=port, log_level=repo.log_level, server_header=False,
                proxy_headers=False, timeout_graceful_shutdown=10, http=http)


def serve_service_main(service: str) -> None:
    """Entry for `python -m services.<name>`: same as `mmr serve <name>`."""
    from mmr.cli import app

    app(["serve", service, *sys.argv[1:]])


def data_dir_default() -> Path:
    return Path("mmr-data")
