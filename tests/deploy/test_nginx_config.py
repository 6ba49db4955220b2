"""deploy/nginx/mmr.conf.template, rendered and run by a real nginx.

The routing test puts five stub upstreams (nginx servers on unix sockets that answer their
service's name and the headers they received) behind the rendered template, then asks nginx for
every sample path of the routing table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mmr.deploy.generate import stale_files
from shared.config import RepoConfig
from tests.deploy.routing import SERVICES, sample_paths, service_for
from tests.infra.nginx import (
    TEMPLATE_PATH,
    NginxProcess,
    check_config,
    full_config,
    render_mmr_conf,
    render_template,
    start_nginx,
)
from tests.infra.raw_http import send_raw

STUB_REPLY = '"$SERVICE|$http_host|$http_x_forwarded_host|$http_x_forwarded_for|$http_x_request_id"'


def _stub_server(service: str, socket_path: Path) -> str:
    reply = STUB_REPLY.replace("$SERVICE", service)
    return f"""
server {{
    listen unix:{socket_path};
    location / {{ default_type text/plain; return 200 {reply}; }}
}}
"""


@pytest.fixture(scope="module")
def routed_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxProcess]:
    workdir = tmp_path_factory.mktemp("nginx-routing")
    sockets = {service: workdir / f"{service}.sock" for service in SERVICES}
    conf = render_mmr_conf({service: f"unix:{path}" for service, path in sockets.items()})
    conf += "".join(_stub_server(service, path) for service, path in sockets.items())
    nginx = start_nginx(conf, workdir)
    try:
        yield nginx
    finally:
        nginx.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def test_rendered_template_passes_nginx_syntax_check(tmp_path: Path) -> None:
    upstreams = {service: f"127.0.0.1:{8010 + i}" for i, service in enumerate(SERVICES)}
    conf = full_config(render_mmr_conf(upstreams, listen="127.0.0.1:8080"), tmp_path)
    done = check_config(conf, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr and "test is successful" in done.stderr


def test_template_has_exactly_the_documented_placeholders() -> None:
    text = TEMPLATE_PATH.read_text()
    placeholders = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert placeholders == {"MMR_LISTEN", "MMR_MAX_BODY_SIZE",
                            *(f"{s.upper()}_UPSTREAM" for s in SERVICES)}
    with pytest.raises(ValueError, match="ADMIN_UPSTREAM"):
        render_template({"MMR_LISTEN": "8080"})


def test_upload_and_download_stream_bodies() -> None:
    locations = [line for line in TEMPLATE_PATH.read_text().splitlines() if "location " in line]
    for service in ("upload", "download"):
        mine = [line for line in locations if f"proxy_pass http://mmr_{service};" in line]
        assert mine, service
        for line in mine:
            assert "proxy_request_buffering off;" in line and "proxy_buffering off;" in line


def test_the_body_limit_is_the_operators_choice() -> None:
    assert re.search(r"^\s*client_max_body_size \$\{MMR_MAX_BODY_SIZE\};", TEMPLATE_PATH.read_text(),
                     re.MULTILINE)


def test_the_template_and_the_ingress_are_generated_from_the_route_table() -> None:
    """Edit deploy/routes.yaml, then `python -m mmr.deploy.generate`; never the outputs."""
    assert stale_files() == []


@pytest.mark.parametrize("path", sample_paths())
def test_nginx_routes_each_path_like_the_routing_table(
    routed_nginx: NginxProcess, http: httpx.Client, path: str
) -> None:
    response = http.get(routed_nginx.url + path)
    expected = service_for(path)
    if expected is None:
        assert response.status_code == 404
        assert response.json()["errcode"] == "M_UNRECOGNIZED"
    else:
        assert response.status_code == 200, routed_nginx.error_log()
        assert response.text.split("|")[0] == expected


def test_post_and_put_route_like_get(routed_nginx: NginxProcess) -> None:
    upload = "/_matrix/media/v3/upload"
    assert httpx.post(routed_nginx.url + upload, content=b"x" * 2048).text.startswith("upload|")
    put = httpx.put(routed_nginx.url + upload + "/localhost/abc", content=b"x")
    assert put.text.startswith("upload|")
    create = httpx.post(routed_nginx.url + "/_matrix/media/v1/create")
    assert create.text.startswith("upload|")


def test_host_forwarding_and_request_id_reach_the_upstream(routed_nginx: NginxProcess) -> None:
    path = "/_matrix/client/v1/media/download/example.org/abc"
    given = httpx.get(routed_nginx.url + path,
                      headers={"Host": "example.org:8448", "X-Request-Id": "req-from-client"})
    service, host, forwarded_host, forwarded_for, request_id = given.text.split("|")
    assert service == "download"
    assert host == forwarded_host == "example.org:8448"
    assert forwarded_for == "127.0.0.1"
    assert request_id == "req-from-client"

    generated = httpx.get(routed_nginx.url + path, headers={"Host": "example.org"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.text.split("|")[4])


def test_head_limits_are_mmr_defaults() -> None:
    """nginx bounds request heads as mmr does (the embedded default has no nginx in front)."""
    text = TEMPLATE_PATH.read_text()
    buffers = re.search(r"^\s*large_client_header_buffers (\d+) (\d+)k;", text, re.MULTILINE)
    assert buffers is not None
    count, size = int(buffers[1]), int(buffers[2]) * 1024
    repo = RepoConfig()
    assert size == repo.max_request_line_bytes == repo.max_header_bytes
    assert count * size == repo.max_request_head_bytes
    timeout = re.search(r"^\s*client_header_timeout (\d+)s;", text, re.MULTILINE)
    assert timeout is not None and int(timeout[1]) == repo.request_head_timeout_seconds


@pytest.mark.parametrize(
    ("request_line", "headers", "status"),
    [
        (b"GET /_matrix/media/v3/config?" + b"q" * 9000, b"", 414),
        (b"GET /_matrix/media/v3/config", b"X-Big: " + b"v" * 9000 + b"\r\n", 431),
        (b"GET /_matrix/media/v3/config",
         b"".join(b"X-Fill-%d: %s\r\n" % (i, b"v" * 6000) for i in range(4)), 431),
    ],
    ids=["request line", "one header", "whole head"],
)
def test_nginx_answers_oversized_heads_as_matrix_json(
    routed_nginx: NginxProcess, request_line: bytes, headers: bytes, status: int
) -> None:
    request = request_line + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + headers + b"\r\n"
    answer = send_raw(routed_nginx.port, request)
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["errcode"] == "M_TOO_LARGE"


def test_nginx_passes_heads_within_the_limits(routed_nginx: NginxProcess) -> None:
    headers = b"X-One: " + b"v" * 7000 + b"\r\n"
    request = (b"GET /_matrix/media/v3/config?" + b"q" * 7000 + b" HTTP/1.1\r\nHost: localhost\r\n"
               b"Connection: close\r\n" + headers + b"\r\n")
    answer = send_raw(routed_nginx.port, request)
    assert answer.status == 200 and answer.body.startswith(b"upload|")
