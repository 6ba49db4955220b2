"""Starting a service (or all of them) under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable

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


LISTEN_BACKLOG = 2048  # uvicorn's own default


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound and listening before anything starts: a port in use stops
    the start at once, in one line naming it, instead of after connecting to everything.

    It listens at once because a socket that is only bound (with SO_REUSEADDR, as servers set
    it) does not keep the port: another server (another process's metrics listener) could bind
    and listen on it while this one migrates, and this one's own listen would fail later.
    Clients that connect before the app serves wait in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        raise StartupError(f"port {port} on {host} {reason}") from exc
    try:
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartupError(f"port {port} on {host} is already in use") from exc
    return sock


class _Server(uvicorn.Server):
    """uvicorn, telling us once it serves (the app started and the socket listens)."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_listening is not None:
            self._on_listening()


def run_uvicorn(app: FastAPI, host: str, port: int, repo: RepoConfig, drain_seconds: int = 10,
                sock: socket.socket | None = None,
                on_listening: Callable[[], None] | None = None) -> None:
    """Serve on the pre-bound `sock` (a `--workers` child's is inherited) or host:port, until
    SIGTERM/SIGINT; then stop accepting and give requests in flight (a long upload) up to
    `drain_seconds` to finish before they are cut. `on_listening` runs once the app has started
    and the socket serves."""
    # Our httptools protocol: bounded request heads, Matrix JSON for requests it cannot parse.
    http = protocol_with_limits(HeadLimits.from_config(repo))
    config = uvicorn.Config(app, host=host, port=port, log_level=repo.log_level,
                            server_header=False, proxy_headers=False,
                            timeout_graceful_shutdown=drain_seconds, http=http,
                            access_log=repo.access_log or repo.log_level == "debug",
                            # uvicorn's own lines (access lines included) go through the
                            # project's handlers.
                            log_config=None)
    # uvicorn re-raises Ctrl-C once it has shut down cleanly: that is a clean exit.
    with contextlib.suppress(KeyboardInterrupt):
        _Server(config, on_listening).run(sockets=[sock] if sock is not None else None)

