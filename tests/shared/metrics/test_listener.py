"""The `/metrics` listener: on its own port when enabled, absent when not, closed at shutdown, and a
port clash stops the start naming `metrics.port`."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from shared.config import parse_config
from shared.metrics.listener import MetricsListenerError
from shared.web.http_metrics import HttpMetricsMiddleware
from tests.conftest import embedded_raw_config
from tests.infra.http_server import ServerThread, free_port
from tests.infra.processes import start_mmr
from tests.services.upload.helpers import unique_bytes, upload
from tests.shared.metrics.conftest import MeteredMmr, embedded_app, metrics_section, scrape


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@contextmanager
def occupied(port: int) -> Iterator[None]:
    """Another program listening on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


async def test_metrics_disabled_nothing_listens_and_nothing_is_counted(tmp_path: Path) -> None:
    port = free_port()
    section = {**metrics_section(port), "enabled": False}
    config = parse_config(embedded_raw_config(tmp_path, metrics=section))
    app = embedded_app(config)
    assert not any(m.cls is HttpMetricsMiddleware for m in app.user_middleware)
    ids = {"service": "embedded", "machine_id": "0"}
    before = REGISTRY.get_sample_value("media_uploads_total", ids) or 0
    with ServerThread(app) as server:
        async with MeteredMmr(server.url, config, tmp_path, port).client() as client:
            assert (await upload(client, unique_bytes())).status_code == 200
        assert refuses_connections(port)
    assert (REGISTRY.get_sample_value("media_uploads_total", ids) or 0) == before


def test_the_listener_is_closed_at_shutdown(tmp_path: Path) -> None:
    port = free_port()
    config = parse_config(embedded_raw_config(tmp_path, metrics=metrics_section(port)))
    with ServerThread(embedded_app(config)):
        assert scrape(port).value("media_http_requests_in_flight") >= 0
    assert refuses_connections(port)


async def test_a_port_clash_stops_the_start_naming_metrics_port(tmp_path: Path) -> None:
    port = free_port()
    config = parse_config(embedded_raw_config(tmp_path, metrics=metrics_section(port)))
    app = embedded_app(config)
    with occupied(port), pytest.raises(MetricsListenerError, match=f"metrics.port {port}"):
        async with app.router.lifespan_context(app):
            pass
    assert not hasattr(app.state, "runtime")  # failed before connecting to anything


def test_mmr_serve_exits_with_a_clear_message_when_metrics_port_is_taken(tmp_path: Path) -> None:
    port = free_port()
    config_file = tmp_path / "media-repo.yaml"
    config_file.write_text(yaml.safe_dump(embedded_raw_config(tmp_path, metrics=metrics_section(port))))
    with occupied(port):
        process = start_mmr("clash", ["serve", "--config", str(config_file)], tmp_path / "logs")
        code = process.wait_exit(timeout=60)
    assert code != 0
    assert f"metrics.port {port} is already in use" in process.stderr()
