"""A `Coordinator` that keeps serving when its backend (Redis) is down.

Every process wraps its coordinator in `FailOpenCoordinator`, because nothing the coordinator
does is needed for correctness: the database and content-addressed storage are. During an
outage:

* the cache misses (`cache_get` is None) and writes are dropped: callers recompute from the
  database or the origin, as they do on any miss;
* a lock is granted without Redis: what it protected is done by this process alone, so work is
  still shared between the concurrent callers of one process (singleflight's in-process fast
  path) and at worst repeated once per process; the database's unique keys keep one result;
* a publish is dropped: waiters also poll the database;
* `LockNotAcquired` (someone really holds the lock) still propagates, and `subscribe`,
  `rate_limit`, `leaky_bucket` and `check_ready` behave as the wrapped coordinator's.

Warnings are throttled, so an outage writes a few lines, not one per request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from time import perf_counter
from typing import Protocol

from redis.exceptions import RedisError

from .base import Coordinator, CoordinatorUnavailable, DelegatingCoordinator, LockNotAcquired
from .ratelimit import ThrottledLog

log = logging.getLogger(__name__)

BACKEND_DOWN: tuple[type[BaseException], ...] = (
    CoordinatorUnavailable, RedisError, OSError, TimeoutError,
)


class CoordinationObserver(Protocol):
    """Told what the log alone would hide: lock waits, and backend errors swallowed here."""

    def lock_waited(self, name: str, outcome: str, seconds: float) -> None: ...

    def backend_error(self, exc: BaseException) -> None: ...


class FailOpenCoordinator(DelegatingCoordinator):
    """`inner`, with cache, locks and publish failing open (see the module doc)."""

    def __init__(self, inner: Coordinator, observer: CoordinationObserver | None = None) -> None:
        super().__init__(inner)
        self._observer = observer
        self._log = ThrottledLog(log, interval=10.0)

    def _down(self, what: str, exc: BaseException) -> None:
        self._log.warning("coordination unavailable, %s: %r", what, exc)
        if self._observer is not None:
            self._observer.backend_error(exc)

    @asynccontextmanager
    async def lock(
        self, name: str, ttl_seconds: float = 30.0, wait_seconds: float = 30.0
    ) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            asked = perf_counter()
            outcome = "acquired"
            try:
                await stack.enter_async_context(
                    self.inner.lock(name, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds))
            except LockNotAcquired:
                self._lock_waited(name, "not_acquired", asked)
                raise
            except BACKEND_DOWN as exc:
                outcome = "unavailable"
                self._down(f"going on without lock {name}", exc)
            self._lock_waited(name, outcome, asked)
            yield

    def _lock_waited(self, name: str, outcome: str, asked: float) -> None:
        if self._observer is not None:
            self._observer.lock_waited(name, outcome, perf_counter() - asked)

    async def publish(self, channel: str, message: bytes) -> None:
        try:
            await self.inner.publish(channel, message)
        except BACKEND_DOWN as exc:
            self._down(f"message on {channel} dropped", exc)

    async def cache_get(self, key: str) -> bytes | None:
        try:
            return await self.inner.cache_get(key)
        except BACKEND_DOWN as exc:
            self._down("cache miss", exc)
            return None

    async def cache_set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        try:
            await self.inner.cache_set(key, value, ttl_seconds)
        except BACKEND_DOWN as exc:
            self._down("cache write dropped", exc)

    async def cache_delete(self, key: str) -> None:
        try:
            await self.inner.cache_delete(key)
        except BACKEND_DOWN as exc:
            self._down("cache delete dropped", exc)
