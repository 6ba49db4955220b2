"""Starting a service (or all of them) under uvicorn."""

from __future__ import annotations

import contextlib
import errno
import importlib
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import uvicorn
from fastapi import FastAPI

from shared.config import ConfigError, MmrConfig, RepoConfig, config_path_from_env, load_config
from shared.ids.machine_id import MachineIdError, resolve_machine_id
from shared.logging import setup_logging
from shared.web.app import make_app
from shared.web.http_protocol import HeadLimits, protocol_with_limits

SERVICES = ("upload", "download", "thumbnail", "preview", "admin")


class StartupError(Exception):
    """The process cannot start; the message says why and how to fix it."""


def check_service_name(name: str) -> None:
    if name not in SERVICES:
        raise StartupError(f"unknown service {name!r}: choose one of {', '.join(SERVICES)}")


def service_module(name: str) -> ModuleType:
    check_service_name(name)
    return importlib.import_module(f"services.{name}.app")


def read_config(config: str | None) -> MmrConfig | None:
    path = config_path_from_env(config)
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise StartupError(f"invalid config {path}:\n{exc}") from exc


def machine_id_for(service: str) -> int:
    try:
        return resolve_machine_id(service)
    except MachineIdError as exc:
        raise StartupError(str(exc)) from exc


def build_service_app(service: str, config: MmrConfig) -> FastAPI:
    machine_id = machine_id_for(service)
    setup_logging(service, machine_id, config.repo)
    module = service_module(service)
    app: FastAPI = module.create_app(config=config, machine_id=machine_id)
    return app


def build_embedded_app(config: MmrConfig, single_homeserver: bool) -> FastAPI:
    from mmr.embedded import all_routers, all_start_hooks

    machine_id = machine_id_for("embedded")
    setup_logging("embedded", machine_id, config.repo)
    return make_app(
        "embedded", all_routers(), config=config, machine_id=machine_id,
        single_homeserver=single_homeserver, start_hooks=all_start_hooks(),
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts: a port in use stops the start at
    once, in one line naming it, instead of after connecting to everything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        raise StartupError(f"port {port} on {host} {reason}") from exc
    return sock


class _Server(uvicorn.Server):
    """uvicorn, telling us once it serves (the app started and the socket listens)."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_listening()


def run_uvicorn(
    app: FastAPI, sock: socket.socket, repo: RepoConfig, on_listening: Callable[[], None]
) -> None:
    # Our httptools protocol: bounded request heads, Matrix JSON for requests it cannot parse.
    http = protocol_with_limits(HeadLimits.from_config(repo))
    # log_config=None: uvicorn's own loggers propagate to the root logger that setup_logging
    # configured, so its lines carry the service, machine and request like every other.
    config = uvicorn.Config(app, log_level=repo.log_level, log_config=None, server_header=False,
                            proxy_headers=False, timeout_graceful_shutdown=10, http=http)
    # uvicorn re-raises Ctrl-C once it has shut down cleanly: that is a clean exit.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, on_listening).run(sockets=[sock])


def serve_service_main(service: str) -> None:
    """Entry for `python -m services.<name>`: same as `mmr serve <name>`."""
    from mmr.cli import app

    app(["serve", service, *sys.argv[1:]])


def data_dir_default() -> Path:
    return Path("mmr-data")
