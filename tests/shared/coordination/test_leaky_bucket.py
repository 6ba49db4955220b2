"""Leaky buckets (the per-IP download byte budget): identical for both coordinators, shared
between processes through Redis, failing open when Redis is unreachable."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.coordination.base import Coordinator
from shared.coordination.ratelimit import InProcessRateLimiter, pour_into
from shared.coordination.redis import RedisCoordinator
from tests.shared.coordination.test_ratelimit import _closed_port

# 1000 units of room (800 capacity + 200 overflow), draining 100 per second.
BUCKET = {"capacity": 800, "drain_per_second": 100.0, "overflow": 200}


async def test_pours_fit_until_capacity_plus_overflow_then_wait_for_the_drain(
    coord: Coordinator, peer: Coordinator
) -> None:
    assert await coord.leaky_bucket("ip:1", 600, **BUCKET) is None
    assert await peer.leaky_bucket("ip:1", 350, **BUCKET) is None  # one bucket for both
    wait = await coord.leaky_bucket("ip:1", 100, **BUCKET)
    # 950 + 100 is 50 over: half a second of draining, less what drained since.
    assert wait is not None and 0.4 < wait <= 0.5
    assert await coord.leaky_bucket("ip:2", 1000, **BUCKET) is None  # its own bucket


async def test_a_refused_pour_adds_nothing(coord: Coordinator) -> None:
    assert await coord.leaky_bucket("k", 1000, **BUCKET) is None
    first = await coord.leaky_bucket("k", 500, **BUCKET)
    second = await coord.leaky_bucket("k", 500, **BUCKET)
    assert first is not None and second is not None
    assert second <= first  # refusals do not push the wait further out


async def test_the_bucket_drains_over_time(coord: Coordinator) -> None:
    fast = {"capacity": 100, "drain_per_second": 1000.0, "overflow": 0}
    assert await coord.leaky_bucket("k", 100, **fast) is None
    wait = await coord.leaky_bucket("k", 50, **fast)
    assert wait is not None and wait <= 0.05
    await asyncio.sleep(wait + 0.02)
    assert await coord.leaky_bucket("k", 50, **fast) is None


async def test_more_than_the_whole_bucket_costs_the_whole_bucket(coord: Coordinator) -> None:
    assert await coord.leaky_bucket("huge", 5000, **BUCKET) is None  # empty bucket: allowed
    wait = await coord.leaky_bucket("huge", 5000, **BUCKET)
    assert wait is not None and 9.5 < wait <= 10.0  # until the bucket is empty again
    assert await coord.leaky_bucket("huge", 0, **BUCKET) is None  # nothing is always fine


async def test_rejects_nonsense_parameters(coord: Coordinator) -> None:
    with pytest.raises(ValueError):
        await coord.leaky_bucket("k", 1, capacity=10, drain_per_second=0, overflow=0)
    with pytest.raises(ValueError):
        await coord.leaky_bucket("k", -1, capacity=10, drain_per_second=1, overflow=0)
    with pytest.raises(ValueError):
        await coord.leaky_bucket("k", 1, capacity=0, drain_per_second=1, overflow=0)


async def test_redis_leaky_bucket_fails_open(caplog: pytest.LogCaptureFixture) -> None:
    coord = RedisCoordinator(f"redis://127.0.0.1:{_closed_port()}/0", namespace="dead")
    caplog.set_level(logging.WARNING, logger="shared.coordination.ratelimit")
    results = [await coord.leaky_bucket("ip", 10_000, **BUCKET) for _ in range(5)]
    assert results == [None] * 5
    warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(warnings) == 1  # throttled, not one per call
    await coord.close()


def test_pour_into_math() -> None:
    assert pour_into(500.0, elapsed=2.0, amount=300, limit=1000, drain_per_second=100) == (
        600.0, None)
    assert pour_into(900.0, elapsed=0.0, amount=300, limit=1000, drain_per_second=100) == (
        900.0, 2.0)
    assert pour_into(50.0, elapsed=10.0, amount=0, limit=1000, drain_per_second=100) == (0.0, None)
    assert pour_into(0.0, elapsed=0.0, amount=5000, limit=1000, drain_per_second=100) == (
        1000.0, None)


async def test_inprocess_buckets_are_bounded() -> None:
    limiter = InProcessRateLimiter(max_keys=2)
    for key in ("a", "b", "c"):
        await limiter.pour(key, 1000, **BUCKET)
    assert len(limiter._levels) == 2
    assert await limiter.pour("a", 1000, **BUCKET) is None  # evicted = an empty bucket
