"""singleflight: one computation for many concurrent callers, across instances."""

from __future__ import annotations

import asyncio

import pytest

from shared.coordination.base import Coordinator
from shared.coordination.singleflight import singleflight


class FakeStore:
    """Stands in for the database/storage where compute() persists its result."""

    def __init__(self) -> None:
        self.value: bytes | None = None
        self.computed = 0
        self.lookups = 0

    async def lookup(self) -> bytes | None:
        self.lookups += 1
        await asyncio.sleep(0)
        return self.value

    async def compute(self) -> bytes:
        self.computed += 1
        await asyncio.sleep(0.2)  # long enough that every caller arrives while it runs
        self.value = b"thumbnail"
        return self.value


async def test_computes_once_for_20_callers_across_two_instances(
    coord: Coordinator, peer: Coordinator
) -> None:
    store = FakeStore()
    callers = [singleflight(c, "thumb:1", store.compute, store.lookup) for c in [coord, peer] * 10]
    results = await asyncio.gather(*callers)
    assert results == [b"thumbnail"] * 20
    assert store.computed == 1
    # Later calls are plain lookup hits.
    assert await singleflight(peer, "thumb:1", store.compute, store.lookup) == b"thumbnail"
    assert store.computed == 1


async def test_lookup_hit_skips_compute(coord: Coordinator) -> None:
    store = FakeStore()
    store.value = b"cached"
    assert await singleflight(coord, "hit", store.compute, store.lookup) == b"cached"
    assert store.computed == 0


async def test_error_reaches_all_callers_and_is_not_cached(coord: Coordinator) -> None:
    attempts = 0

    async def failing() -> bytes:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.05)
        raise RuntimeError("remote down")

    async def miss() -> bytes | None:
        return None

    results = await asyncio.gather(
        *[singleflight(coord, "err", failing, miss) for _ in range(5)], return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)
    assert attempts == 1
    with pytest.raises(RuntimeError):
        await singleflight(coord, "err", failing, miss)
    assert attempts == 2


async def test_cancelled_caller_does_not_cancel_others(coord: Coordinator) -> None:
    store = FakeStore()
    first = asyncio.create_task(singleflight(coord, "c", store.compute, store.lookup))
    second = asyncio.create_task(singleflight(coord, "c", store.compute, store.lookup))
    await asyncio.sleep(0.05)
    first.cancel()
    assert await second == b"thumbnail"
    assert store.computed == 1
