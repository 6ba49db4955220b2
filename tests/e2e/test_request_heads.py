"""Request heads against `mmr serve` exactly as an operator starts it (the embedded default faces
clients directly): the request line, each header and the whole head are bounded where the bytes
arrive, and what uvicorn cannot parse is answered as Matrix JSON, never plain text."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.infra.processes import MmrProcess, serving_mmr
from tests.infra.raw_http import RawAnswer, send_raw

KIB = 1024
CLOSE = b"Host: localhost\r\nConnection: close\r\n"


@pytest.fixture(scope="module")
def mmr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MmrProcess]:
    workdir = tmp_path_factory.mktemp("request-heads")
    with serving_mmr("heads", ["serve", "--data", str(workdir / "mmr-data")], workdir) as process:
        yield process


def _get(mmr: MmrProcess, path: bytes = b"/healthz", headers: bytes = b"") -> RawAnswer:
    return send_raw(mmr.port, b"GET " + path + b" HTTP/1.1\r\n" + CLOSE + headers + b"\r\n")


def _matrix_error(answer: RawAnswer, status: int, errcode: str) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["errcode"] == errcode


def test_heads_just_within_the_limits_are_served(mmr: MmrProcess) -> None:
    headers = b"".join(b"X-Fill-%d: %s\r\n" % (i, b"v" * (4 * KIB - 100)) for i in range(2))
    assert _get(mmr, b"/healthz?" + b"q" * (7 * KIB), headers).status == 200
    assert _get(mmr, headers=b"X-One: " + b"v" * (8 * KIB - 16) + b"\r\n").status == 200


def test_a_long_request_line_is_414(mmr: MmrProcess) -> None:
    _matrix_error(_get(mmr, b"/healthz?" + b"q" * (9 * KIB)), 414, "M_TOO_LARGE")


def test_one_long_header_is_431(mmr: MmrProcess) -> None:
    _matrix_error(_get(mmr, headers=b"X-Big: " + b"v" * (9 * KIB) + b"\r\n"), 431, "M_TOO_LARGE")


@pytest.mark.parametrize(
    "request_line",
    [b"GET /_matrix/client/v1/media/download/localhost/abc", b"HEAD /_matrix/media/v3/download/localhost/abc",
     b"POST /_matrix/media/v3/upload", b"PUT /_matrix/media/v3/upload/localhost/abc"],
    ids=["download", "legacy download", "upload", "async upload"],
)
def test_the_lean_routes_are_bounded_too(mmr: MmrProcess, request_line: bytes) -> None:
    """The download and upload routes are plain Starlette routes; the bound is below routing."""
    big = b"X-Big: " + b"v" * (9 * KIB) + b"\r\n"
    answer = send_raw(mmr.port, request_line + b" HTTP/1.1\r\n" + CLOSE + big + b"\r\n")
    _matrix_error(answer, 431, "M_TOO_LARGE")
    method, path = request_line.split(b" ")
    line = method + b" " + path + b"?" + b"q" * (9 * KIB) + b" HTTP/1.1\r\n"
    _matrix_error(send_raw(mmr.port, line + CLOSE + b"\r\n"), 414, "M_TOO_LARGE")


def test_many_headers_past_the_whole_head_limit_are_431(mmr: MmrProcess) -> None:
    headers = b"".join(b"X-Fill-%d: %s\r\n" % (i, b"v" * (2 * KIB)) for i in range(10))
    _matrix_error(_get(mmr, headers=headers), 431, "M_TOO_LARGE")


def test_an_endless_header_is_cut_off_without_reading_it(mmr: MmrProcess) -> None:
    """64 MiB of one header: answered 431 after a few KiB; the server's memory does not grow."""
    rss_before = psutil.Process(mmr.process.pid).memory_info().rss

    def endless() -> Iterator[bytes]:
        yield b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Attack: "
        for _ in range(64):
            yield b"a" * (1024 * KIB)

    started = time.monotonic()
    _matrix_error(send_raw(mmr.port, endless()), 431, "M_TOO_LARGE")
    assert time.monotonic() - started < 5
    grown = psutil.Process(mmr.process.pid).memory_info().rss - rss_before
    assert grown < 16 * 1024 * KIB, f"RSS grew by {grown / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n",
        b"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: local\x01host\r\n\r\n",
        b"FOO /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /heal thz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ],
    ids=["bad content-length", "CL and TE", "control character", "method FOO", "space in path",
         "TLS hello on plain HTTP"],
)
def test_what_cannot_be_parsed_is_400_matrix_json(mmr: MmrProcess, request_bytes: bytes) -> None:
    _matrix_error(send_raw(mmr.port, request_bytes), 400, "M_UNKNOWN")


def test_the_server_still_serves_after_the_attacks(mmr: MmrProcess) -> None:
    assert _get(mmr).status == 200


def test_bodies_and_keep_alive_requests_are_not_counted_as_heads(mmr: MmrProcess) -> None:
    """A chunked 4 MiB upload, then 3 requests with 6 KiB headers on one keep-alive connection."""
    token = mmr.wait_for_stdout("token:").split("token:", 1)[1].strip()
    auth = {"Authorization": f"Bearer {token}", "X-Fill": "v" * (6 * KIB)}

    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * (64 * KIB)

    with httpx.Client(base_url=mmr.url, timeout=30) as client:
        uploaded = client.post("/_matrix/media/v3/upload", content=body(), headers=auth)
        assert uploaded.status_code == 200, uploaded.text
        for _ in range(3):
            assert client.get("/healthz", headers=auth).status_code == 200
