"""nginx's own answers are Matrix errors: the rendered template run by a real nginx, with one
pool stopped, one too slow, and a body limit, in front of stub pools.

mmr's own error answers must pass through untouched (nginx only rewrites what it makes itself).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.routing import SERVICES
from tests.infra.nginx import NginxProcess, render_mmr_conf, start_nginx

READ_TIMEOUT = "1s"
POOL_ERROR = '{"errcode":"M_LIMIT_EXCEEDED","error":"from the pool"}'


class SilentUpstream:
    """Accepts connections and never answers: a pool that is up but too slow."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        self.sock.close()


def _stub(socket_path: Path, status: int, body: str) -> str:
    return f"""
server {{
    listen unix:{socket_path};
    location / {{ default_type application/json; return {status} '{body}'; }}
}}
"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxProcess]:
    """upload and admin answer; download is stopped (nothing listens on its socket);
    thumbnail never answers; preview answers its own 429 Matrix error."""
    workdir = tmp_path_factory.mktemp("nginx-errors")
    silent = SilentUpstream()
    sockets = {service: workdir / f"{service}.sock" for service in SERVICES}
    upstreams = {service: f"unix:{path}" for service, path in sockets.items()}
    upstreams["thumbnail"] = f"127.0.0.1:{silent.port}"
    conf = render_mmr_conf(upstreams, max_body_size="1k")
    # The test cannot wait two minutes for the "too slow" case.
    conf = conf.replace("proxy_read_timeout 120s;", f"proxy_read_timeout {READ_TIMEOUT};")
    conf += _stub(sockets["upload"], 200, '{"content_uri":"mxc://localhost/abc"}')
    conf += _stub(sockets["admin"], 200, '{"server":"stub"}')
    conf += _stub(sockets["preview"], 429, POOL_ERROR)
    process = start_nginx(conf, workdir)
    try:
        yield process
    finally:
        process.stop()
        silent.close()


def _assert_matrix_error(response: httpx.Response, status: int, errcode: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, str] = response.json()
    assert body["errcode"] == errcode and body["error"]
    assert response.headers["access-control-allow-origin"] == "*"
    return body


def test_a_nul_byte_in_the_path_is_a_matrix_400(nginx: NginxProcess) -> None:
    response = httpx.get(nginx.url + "/_matrix/media/v3/download/localhost/%00")
    _assert_matrix_error(response, 400, "M_UNRECOGNIZED")


def test_a_body_over_the_limit_is_a_matrix_413(nginx: NginxProcess) -> None:
    response = httpx.post(nginx.url + "/_matrix/media/v3/upload", content=b"x" * 4096)
    _assert_matrix_error(response, 413, "M_TOO_LARGE")
    small = httpx.post(nginx.url + "/_matrix/media/v3/upload", content=b"x" * 100)
    assert small.status_code == 200 and small.json()["content_uri"]


def test_a_stopped_pool_is_a_matrix_502_naming_it(nginx: NginxProcess) -> None:
    response = httpx.get(nginx.url + "/_matrix/client/v1/media/download/localhost/abc",
                         headers={"X-Request-Id": "req-502"})
    body = _assert_matrix_error(response, 502, "M_UNKNOWN")
    assert "download" in body["error"]
    assert response.headers["x-request-id"] == "req-502"
    assert int(response.headers["retry-after"]) > 0


def test_a_pool_too_slow_to_answer_is_a_matrix_504_naming_it(nginx: NginxProcess) -> None:
    response = httpx.get(nginx.url + "/_matrix/client/v1/media/thumbnail/localhost/abc?width=1",
                         timeout=30)
    body = _assert_matrix_error(response, 504, "M_UNKNOWN")
    assert "thumbnail" in body["error"]


def test_the_pools_own_errors_pass_through_untouched(nginx: NginxProcess) -> None:
    response = httpx.get(nginx.url + "/_matrix/client/v1/media/preview_url?url=x")
    assert response.status_code == 429
    assert response.text == POOL_ERROR


def test_a_path_nobody_serves_is_a_matrix_404(nginx: NginxProcess) -> None:
    response = httpx.get(nginx.url + "/_matrix/client/v3/sync")
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
