"""A request head must arrive whole in time (`repo.requestHeadTimeoutSeconds`, 1 s here), or the
connection is answered 408 Matrix JSON and closed: a client dripping its head, or one that
connects and sends nothing, holds a connection for no longer. Slow answers and slow bodies are
not heads and are never cut."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.conftest import SERVER_NAME, TEST_SECRET, embedded_raw_config
from tests.infra.processes import MmrProcess, serving_mmr
from tests.infra.raw_http import RawAnswer, parse_answer

TIMEOUT_SECONDS = 1.0
# The config names its homeserver, so requests say which one they are for.
AUTH = {"Authorization": f"Bearer {TEST_SECRET}", "Host": SERVER_NAME}


@pytest.fixture(scope="module")
def mmr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MmrProcess]:
    workdir = tmp_path_factory.mktemp("head-timeout")
    config = workdir / "mmr.yaml"
    raw = embedded_raw_config(workdir, repo={"requestHeadTimeoutSeconds": TIMEOUT_SECONDS})
    config.write_text(yaml.safe_dump(raw))
    with serving_mmr("head-timeout", ["serve", "--config", str(config)], workdir) as process:
        yield process


def _drip(port: int, first: bytes, every: float, for_seconds: float) -> tuple[RawAnswer, float]:
    """Send `first`, then one header line every `every` seconds until the server answers (or
    `for_seconds` pass); the answer and how long after connecting it came."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(first)
        sock.settimeout(every)
        received = bytearray()
        while time.monotonic() - started < for_seconds:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(b"X-Drip: 1\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                continue
            if not data:
                break
            received += data
        return parse_answer(bytes(received)), time.monotonic() - started


def test_a_head_dripped_a_line_at_a_time_is_408_after_the_timeout(mmr: MmrProcess) -> None:
    answer, after = _drip(mmr.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n",
                          every=0.2, for_seconds=10)
    assert answer.status == 408
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"errcode": "M_UNKNOWN",
                             "error": "The request head did not arrive within 1 seconds"}
    assert TIMEOUT_SECONDS <= after < TIMEOUT_SECONDS + 2


def test_a_connection_that_sends_nothing_is_closed_after_the_timeout(mmr: MmrProcess) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", mmr.port), timeout=10) as sock:
        raw = b""
        while data := sock.recv(65536):
            raw += data
    assert parse_answer(raw).status == 408
    assert TIMEOUT_SECONDS <= time.monotonic() - started < TIMEOUT_SECONDS + 2


def test_an_answer_slower_than_the_timeout_is_not_cut(mmr: MmrProcess) -> None:
    """A download waiting 2.5 s for an async upload that never comes gets its own answer."""
    with httpx.Client(base_url=mmr.url, headers=AUTH, timeout=30) as client:
        media_id = client.post("/_matrix/media/v1/create").json()["content_uri"].rsplit("/", 1)[1]
        started = time.monotonic()
        waited = client.get(f"/_matrix/client/v1/media/download/{SERVER_NAME}/{media_id}",
                            params={"timeout_ms": 2500})
        assert waited.status_code == 504, waited.text
        assert waited.json()["errcode"] == "M_NOT_YET_UPLOADED"
        assert time.monotonic() - started >= 2.4
        # The same keep-alive connection serves its next request.
        assert client.get("/healthz").status_code == 200


def test_a_body_slower_than_the_timeout_is_not_cut(mmr: MmrProcess) -> None:
    def slow_body() -> Iterator[bytes]:
        for _ in range(5):
            time.sleep(0.5)
            yield b"x" * 1000

    with httpx.Client(base_url=mmr.url, headers=AUTH, timeout=30) as client:
        uploaded = client.post("/_matrix/media/v3/upload", content=slow_body(),
                               headers={"Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 200, uploaded.text


def test_heads_that_arrive_in_time_are_served(mmr: MmrProcess) -> None:
    with httpx.Client(base_url=mmr.url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(0.6)  # idle between requests, within uvicorn's keep-alive
