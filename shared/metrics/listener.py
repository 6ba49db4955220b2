"""The per-process `/metrics` listener on `metrics.bindAddress:metrics.port`, apart from the API.

prometheus_client's own threaded WSGI server: it needs nothing from the event loop, so a busy or
blocked loop still answers scrapes, and a scrape never competes with media requests for it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import start_http_server

from shared.config import MetricsConfig

log = logging.getLogger(__name__)


class MetricsListenerError(Exception):
    """The metrics listener could not start; the message names the config keys to change."""


def _explain(config: MetricsConfig, exc: OSError) -> str:
    where = f"metrics.bindAddress {config.bind_address!r}, metrics.port {config.port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"metrics.port {config.port} is already in use on {config.bind_address} (by "
                f"another program, or another mmr process on this host: each needs its own "
                f"metrics.port; or set metrics.enabled: false)")
    if isinstance(exc, socket.gaierror):
        return f"cannot listen for metrics on {where}: the address does not resolve ({exc})"
    return f"cannot listen for metrics on {where}: {exc.strerror or exc}"


@asynccontextmanager
async def metrics_listener(config: MetricsConfig) -> AsyncIterator[None]:
    """Serve `/metrics` while the block runs, when `metrics.enabled`; closed on the way out.

    Raises `MetricsListenerError` when the address cannot be bound (a port clash included).
    """
    if not config.enabled:
        yield
        return
    try:
        server, thread = start_http_server(config.port, config.bind_address)
    except OSError as exc:
        raise MetricsListenerError(_explain(config, exc)) from exc
    log.info("metrics on http://%s:%d/metrics", config.bind_address, config.port)
    try:
        yield
    finally:
        # shutdown() waits for the serving thread's next poll (up to half a second): off the loop.
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join(timeout=5)
