"""Locks that protect efficiency, not correctness: when the coordination backend is down, go on.

The hash lock (store identical bytes once) and the async-upload claim (answer a second PUT 409
early) both have a database constraint or a content-addressed key behind them, so losing the lock
during a Redis outage costs duplicate work at worst. matrix-media-repo makes the same choice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from shared.coordination.base import Coordinator, CoordinatorUnavailable

log = logging.getLogger(__name__)


@asynccontextmanager
async def lock_unless_unavailable(
    coordinator: Coordinator, name: str, ttl_seconds: float, wait_seconds: float
) -> AsyncIterator[bool]:
    """Hold lock `name`; yields True when held, False when the backend is unreachable.

    `LockNotAcquired` (someone else holds it past `wait_seconds`) still propagates.
    """
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(
                coordinator.lock(name, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds)
            )
        except CoordinatorUnavailable as exc:
            log.warning("lock %s unavailable, going on without it: %r", name, exc)
            yield False
            return
        yield True
