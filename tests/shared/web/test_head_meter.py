"""HeadMeter: where a request head's limits are judged, whatever the reads' boundaries."""

from __future__ import annotations

import pytest

from shared.config import RepoConfig
from shared.web.http_protocol import HeadLimits, HeadMeter

LIMITS = HeadLimits(request_line=100, header_line=50, head=200)


def _feed(data: bytes, read_size: int) -> tuple[int | None, HeadMeter]:
    meter = HeadMeter(LIMITS)
    for start in range(0, len(data), read_size):
        rejection = meter.feed(data[start:start + read_size])
        if rejection is not None:
            return rejection.status, meter
    return None, meter


READ_SIZES = [1, 2, 3, 7, 64, 100000]


@pytest.mark.parametrize("read_size", READ_SIZES)
def test_a_head_within_limits_passes_and_its_body_is_not_counted(read_size: int) -> None:
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    status, meter = _feed(head + b"b" * 1000, read_size)
    assert status is None
    assert not meter.in_head


@pytest.mark.parametrize("read_size", READ_SIZES)
@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 50 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-Header: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n" * 10 + b"\r\n", 431),
        (b"GET / HTTP/1.1\nX-Big: " + b"v" * 60 + b"\n\n", 431),
    ],
    ids=["request line", "one header", "whole head", "bare LF"],
)
def test_each_limit_is_enforced(head: bytes, status: int, read_size: int) -> None:
    assert _feed(head, read_size)[0] == status


def test_an_endless_header_is_refused_as_soon_as_it_passes_the_limit() -> None:
    meter = HeadMeter(LIMITS)
    assert meter.feed(b"GET / HTTP/1.1\r\nX-Big: ") is None
    assert meter.feed(b"v" * 30) is None
    rejection = meter.feed(b"v" * 30)
    assert rejection is not None and rejection.status == 431


def test_blank_lines_before_the_request_line_do_not_end_the_head() -> None:
    status, _ = _feed(b"\r\n\r\nGET / HTTP/1.1\r\nX-Big: " + b"v" * 60, 5)
    assert status == 431


def test_restart_counts_the_next_request_from_zero() -> None:
    meter = HeadMeter(LIMITS)
    assert meter.feed(b"GET / HTTP/1.1\r\nX-A: " + b"v" * 40 + b"\r\n\r\n") is None
    meter.restart()
    assert meter.feed(b"GET / HTTP/1.1\r\nX-A: " + b"v" * 40 + b"\r\n\r\n") is None


def test_limits_come_from_the_repo_section() -> None:
    repo = RepoConfig.model_validate(
        {"maxRequestLineBytes": 1000, "maxHeaderBytes": 2000, "maxRequestHeadBytes": 3000})
    assert HeadLimits.from_config(repo) == HeadLimits(1000, 2000, 3000)
    defaults = HeadLimits.from_config(RepoConfig())
    assert defaults == HeadLimits(8192, 8192, 16384)
