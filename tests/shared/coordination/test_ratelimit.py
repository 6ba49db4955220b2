"""Rate limiting: token bucket, identical for both coordinators; Redis fails open."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from shared.coordination.base import Coordinator
from shared.coordination.ratelimit import InProcessRateLimiter, take_token
from shared.coordination.redis import RedisCoordinator


async def test_allows_burst_then_limits_with_wait_time(
    coord: Coordinator, peer: Coordinator
) -> None:
    for _ in range(3):
        assert await coord.rate_limit("ip:1", rate_per_second=10, burst=3) is None
    wait = await peer.rate_limit("ip:1", rate_per_second=10, burst=3)  # shared bucket
    assert wait is not None
    assert 0.05 < wait <= 0.1
    await asyncio.sleep(wait + 0.02)
    assert await coord.rate_limit("ip:1", rate_per_second=10, burst=3) is None
    # Another key has its own bucket.
    assert await coord.rate_limit("ip:2", rate_per_second=10, burst=3) is None


async def test_limited_hits_take_nothing(coord: Coordinator) -> None:
    assert await coord.rate_limit("slow", rate_per_second=1, burst=1) is None
    first = await coord.rate_limit("slow", rate_per_second=1, burst=1)
    second = await coord.rate_limit("slow", rate_per_second=1, burst=1)
    assert first is not None and second is not None
    assert second <= first  # waiting shrinks; refusals don't push it further out


async def test_rejects_nonsense_parameters(coord: Coordinator) -> None:
    with pytest.raises(ValueError):
        await coord.rate_limit("k", rate_per_second=0, burst=1)
    with pytest.raises(ValueError):
        await coord.rate_limit("k", rate_per_second=1, burst=0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


async def test_redis_rate_limit_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    coord = RedisCoordinator(f"redis://127.0.0.1:{_closed_port()}/0", namespace="dead")
    caplog.set_level(logging.WARNING, logger="shared.coordination.ratelimit")
    started = time.monotonic()
    results = [await coord.rate_limit("ip", rate_per_second=1, burst=1) for _ in range(5)]
    assert results == [None] * 5
    assert time.monotonic() - started < 2.0
    warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(warnings) == 1  # not one per call
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        await coord.check_ready()
    await coord.close()


def test_take_token_math() -> None:
    assert take_token(0.0, elapsed=0.5, rate_per_second=2, burst=5) == (0.0, None)
    tokens, wait = take_token(0.5, elapsed=0.0, rate_per_second=2, burst=5)
    assert (tokens, wait) == (0.5, 0.25)
    assert take_token(4.0, elapsed=100, rate_per_second=2, burst=5) == (4.0, None)  # capped


async def test_inprocess_limiter_is_bounded() -> None:
    limiter = InProcessRateLimiter(max_keys=2)
    for key in ("a", "b", "c"):
        await limiter.hit(key, rate_per_second=1, burst=1)
    assert len(limiter._buckets) == 2
    assert await limiter.hit("a", rate_per_second=1, burst=1) is None  # evicted = fresh bucket
