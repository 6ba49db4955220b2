"""Hypothesis over malformed chunked upload bodies against `mmr serve` (the embedded default):
every answer is Matrix JSON (400 for a body that cannot be parsed, 200/413 when it happened to
be valid), never a 5xx; a cut-off body is dropped; the server keeps serving and no temp file
outlives its request."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.infra.processes import MmrProcess, start_mmr
from tests.infra.raw_http import parse_answer


@pytest.fixture(scope="module")
def mmr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MmrProcess, str, Path]]:
    workdir = tmp_path_factory.mktemp("malformed-chunked")
    process = start_mmr("chunked", ["serve", "--data", str(workdir / "mmr-data")], workdir / "logs",
                        cwd=workdir)
    try:
        process.wait_healthy()
        token = process.wait_for_stdout("token:").split("token:", 1)[1].strip()
        yield process, token, workdir / "mmr-data" / "tmp"
    finally:
        process.stop()


def _chunk(data: st.DrawFn) -> bytes:
    payload = data(st.binary(max_size=40))
    size = data(st.sampled_from(["exact", "more", "less", "bad-hex", "huge", "negative", "ext"]))
    line = {
        "exact": b"%x" % len(payload), "more": b"%x" % (len(payload) + 3),
        "less": b"%x" % max(len(payload) - 2, 0), "bad-hex": b"zz",
        "huge": b"ffffffffffffffffff", "negative": b"-5", "ext": b"%x;name=\x01" % len(payload),
    }[size]
    ending = data(st.sampled_from([b"\r\n", b"\n", b"", b"\r"]))
    return line + b"\r\n" + payload + ending


chunked_bodies = st.builds(
    lambda chunks, end: b"".join(chunks) + end,
    st.lists(st.composite(_chunk)(), max_size=5),
    st.sampled_from([b"0\r\n\r\n", b"0\r\nX-Trailer: 1\r\n\r\n", b"0\r\n", b"", b"garbage\r\n\r\n"]),
)


def _exchange(port: int, request: bytes) -> bytes:
    """Send everything, close our side (a cut-off body ends there), read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        received = bytearray()
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            received += data
        return bytes(received)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=chunked_bodies)
def test_malformed_chunked_uploads_get_matrix_answers(
    mmr: tuple[MmrProcess, str, Path], body: bytes
) -> None:
    process, token, _ = mmr
    head = (b"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: localhost\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Type: application/octet-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    raw = _exchange(process.port, head + body)
    if raw:  # nothing at all: the body was cut off and the request dropped
        answer = parse_answer(raw)
        assert answer.status in (200, 400, 413), answer
        assert answer.headers.get("content-type") == "application/json", answer
        assert "errcode" in answer.json() or "content_uri" in answer.json()


def test_the_server_is_healthy_and_left_no_temp_files(mmr: tuple[MmrProcess, str, Path]) -> None:
    process, _, temp_dir = mmr
    assert httpx.get(process.url + "/healthz").status_code == 200
    deadline = time.monotonic() + 10
    while temp_dir.exists() and any(temp_dir.iterdir()):
        assert time.monotonic() < deadline, list(temp_dir.iterdir())
        time.sleep(0.1)
