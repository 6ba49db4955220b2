"""Lock behaviour, identical for both coordinators."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager

import pytest

from shared.coordination.base import Coordinator, LockNotAcquired


async def test_mutual_exclusion_between_two_holders(coord: Coordinator, peer: Coordinator) -> None:
    inside = 0
    max_inside = 0

    async def worker(c: Coordinator) -> None:
        nonlocal inside, max_inside
        for _ in range(5):
            async with c.lock("mutex", ttl_seconds=5, wait_seconds=5):
                inside += 1
                max_inside = max(max_inside, inside)
                await asyncio.sleep(0.01)
                inside -= 1

    await asyncio.gather(worker(coord), worker(peer), worker(coord))
    assert max_inside == 1


async def test_wait_timeout_raises(coord: Coordinator, peer: Coordinator) -> None:
    async with coord.lock("busy", ttl_seconds=5):
        started = time.monotonic()
        with pytest.raises(LockNotAcquired):
            async with peer.lock("busy", wait_seconds=0.2):
                pytest.fail("acquired a lock that is held")
        assert 0.19 <= time.monotonic() - started < 1.5


async def test_different_names_do_not_block(coord: Coordinator, peer: Coordinator) -> None:
    async with coord.lock("a"), peer.lock("b", wait_seconds=0.1):
        pass


async def test_released_on_exception_and_reacquirable(
    coord: Coordinator, peer: Coordinator
) -> None:
    with pytest.raises(RuntimeError):
        async with coord.lock("boom"):
            raise RuntimeError("holder failed")
    async with peer.lock("boom", wait_seconds=0.2):
        pass


async def test_cancelled_holder_releases(coord: Coordinator, peer: Coordinator) -> None:
    entered = asyncio.Event()

    async def holder() -> None:
        async with coord.lock("cancelled", ttl_seconds=30):
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(holder())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with peer.lock("cancelled", wait_seconds=1.0):
        pass


async def test_lock_of_dead_holder_expires_after_ttl(coord: Coordinator, peer: Coordinator) -> None:
    # The holder's task ends inside the lock without ever leaving it: it "died" holding it.
    forgotten: list[AbstractAsyncContextManager[None]] = []

    async def dies_holding() -> None:
        cm = coord.lock("orphan", ttl_seconds=0.3)
        forgotten.append(cm)  # keep it referenced, or GC finalisation would release the lock
        await cm.__aenter__()

    await asyncio.create_task(dies_holding())
    started = time.monotonic()
    async with peer.lock("orphan", wait_seconds=3):
        waited = time.monotonic() - started
    assert 0.15 <= waited < 2.0, waited
    await forgotten[0].__aexit__(None, None, None)  # a stale release must be harmless


async def test_renewal_keeps_long_holder(coord: Coordinator, peer: Coordinator) -> None:
    async with coord.lock("long", ttl_seconds=0.3):
        # Held for more than three TTLs: without renewal the peer would get it.
        with pytest.raises(LockNotAcquired):
            async with peer.lock("long", wait_seconds=1.0):
                pytest.fail("lock expired while its holder was alive")
    async with peer.lock("long", wait_seconds=0.5):
        pass
