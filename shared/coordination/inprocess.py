"""`Coordinator` for a single process: everything lives in this process's memory.

This is the embedded default (no Redis). It mirrors the Redis semantics closely enough that code
written against one works against the other:

* Locks have a TTL. A holder inside `async with lock(...)` keeps it for as long as its task runs
  (the equivalent of the Redis renewal task); if the holding task ends without releasing (a
  forgotten lock), the lock expires `ttl_seconds` after it was last renewed.
* Pub/sub delivers to every subscription open at publish time, through one queue per subscriber.
* The cache expires entries lazily on read and is bounded by LRU eviction.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from .base import LockNotAcquired, Subscription
from .ratelimit import InProcessRateLimiter, RateLimitedCoordinator

logger = logging.getLogger(__name__)

_CLOSED = object()  # queue sentinel that wakes readers of a closed subscription


@dataclass
class _HeldLock:
    token: str
    ttl: float
    expires_at: float
    # The task holding the lock through the context manager; None for a bare `acquire`.
    owner: asyncio.Task[object] | None
    released: asyncio.Event = field(default_factory=asyncio.Event)


class InProcessSubscription:
    """One subscriber's queue on one channel."""

    def __init__(self, hub: InProcessCoordinator, channel: str, max_queued: int) -> None:
        self._hub = hub
        self._channel = channel
        self._queue: asyncio.Queue[bytes | object] = asyncio.Queue()
        self._max_queued = max_queued
        self._closed = False

    def deliver(self, message: bytes) -> None:
        # A subscriber that stopped reading must not grow memory without bound: drop its oldest
        # message, as Redis would disconnect a subscriber that exceeds its output buffer.
        if self._queue.qsize() >= self._max_queued:
            self._queue.get_nowait()
            logger.warning("subscriber on %r is not keeping up; dropped a message", self._channel)
        self._queue.put_nowait(message)

    async def get(self, timeout: float) -> bytes | None:
        if self._closed:
            return None
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        return item if isinstance(item, bytes) else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._closed:
            item = await self._queue.get()
            if not isinstance(item, bytes):
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub._unsubscribe(self._channel, self)
        self._queue.put_nowait(_CLOSED)


class InProcessCoordinator(RateLimitedCoordinator):
    """All coordination in this process's memory. Not shared with any other process."""

    def __init__(
        self,
        cache_max_entries: int = 10_000,
        max_queued_messages: int = 10_000,
        rate_limit_max_keys: int = 100_000,
    ) -> None:
        self._locks: dict[str, _HeldLock] = {}
        self._subscribers: dict[str, set[InProcessSubscription]] = {}
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._cache_max_entries = cache_max_entries
        self._max_queued = max_queued_messages
        self._rate_limiter = InProcessRateLimiter(max_keys=rate_limit_max_keys)

    # -- locks ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def lock(
        self, name: str, ttl_seconds: float = 30.0, wait_seconds: float = 30.0
    ) -> AsyncIterator[None]:
        token = await self.acquire(name, ttl_seconds, wait_seconds, owner=asyncio.current_task())
        try:
            yield
        finally:
            self.release(name, token)

    async def acquire(
        self,
        name: str,
        ttl_seconds: float,
        wait_seconds: float,
        owner: asyncio.Task[object] | None = None,
    ) -> str:
        """Take lock `name` and return its token; prefer `lock()`.

        With an `owner` task the lock is renewed for as long as that task runs; without one it
        simply expires after `ttl_seconds` unless `release`d.
        """
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_seconds
        while True:
            held = self._current_holder(name)
            if held is None:
                now = time.monotonic()
                self._locks[name] = _HeldLock(token, ttl_seconds, now + ttl_seconds, owner)
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockNotAcquired(name)
            # Wake on release, or when the holder's TTL runs out (it may have been forgotten).
            until_expiry = max(held.expires_at - time.monotonic(), 0.001)
            with suppress(TimeoutError):
                await asyncio.wait_for(held.released.wait(), min(remaining, until_expiry))

    def release(self, name: str, token: str) -> None:
        """Release lock `name` if `token` still holds it (it may have expired and been retaken)."""
        held = self._locks.get(name)
        if held is not None and held.token == token:
            del self._locks[name]
            held.released.set()

    def _current_holder(self, name: str) -> _HeldLock | None:
        held = self._locks.get(name)
        if held is None:
            return None
        now = time.monotonic()
        if now < held.expires_at:
            return held
        if held.owner is not None and not held.owner.done():
            # The holder is alive: renew, as the Redis coordinator's renewal task would.
            held.expires_at = now + held.ttl
            return held
        del self._locks[name]
        held.released.set()
        return None

    # -- pub/sub -------------------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        for sub in list(self._subscribers.get(channel, ())):
            sub.deliver(message)

    async def subscribe(self, channel: str) -> Subscription:
        sub = InProcessSubscription(self, channel, self._max_queued)
        self._subscribers.setdefault(channel, set()).add(sub)
        return sub

    def _unsubscribe(self, channel: str, sub: InProcessSubscription) -> None:
        subs = self._subscribers.get(channel)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[channel]

    # -- cache ---------------------------------------------------------------------------------

    async def cache_get(self, key: str) -> bytes | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if time.monotonic() >= expires_at:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return value

    async def cache_set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            # Already expired: same outcome as Redis would give (the key is gone).
            self._cache.pop(key, None)
            return
        self._cache[key] = (value, time.monotonic() + ttl_seconds)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_max_entries:
            self._cache.popitem(last=False)

    async def cache_delete(self, key: str) -> None:
        self._cache.pop(key, None)

    # -- lifecycle -----------------------------------------------------------------------------

    async def check_ready(self) -> None:
        """Always ready: there is nothing external to reach."""

    async def close(self) -> None:
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                await sub.close()
