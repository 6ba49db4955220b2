"""Coordination between processes: locks, pub/sub and a shared cache.

One interface, two implementations: `RedisCoordinator` for clusters and `InProcessCoordinator` for
the single-process embedded default. Code that needs coordination takes a `Coordinator` and never
knows which one it has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class LockNotAcquired(Exception):
    """A lock could not be taken within the wait time."""


class CoordinatorUnavailable(Exception):
    """The coordination backend (Redis) cannot be reached or did not answer in time.

    Every `Coordinator` method raises this, never its backend's own errors, so no code outside
    `shared/coordination/` needs to know which backend it has. `rate_limit` and `leaky_bucket`
    never raise it: they fail open.
    """


class Subscription(Protocol):
    """Messages published on one channel, from any process, after subscribing."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def get(self, timeout: float) -> bytes | None:
        """The next message, or None when `timeout` seconds pass without one."""
        ...

    async def close(self) -> None: ...


class Coordinator(Protocol):
    """Cluster-wide primitives. All keys are namespaced by the implementation."""

    def lock(
        self, name: str, ttl_seconds: float = 30.0, wait_seconds: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        """Hold a cluster-wide mutex named `name`.

        The lock expires after `ttl_seconds` if its holder dies (and is renewed while held).
        Raises `LockNotAcquired` if it cannot be taken within `wait_seconds`.
        """
        ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    async def subscribe(self, channel: str) -> Subscription: ...

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_set(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def cache_delete(self, key: str) -> None: ...

    async def rate_limit(self, key: str, rate_per_second: float, burst: int) -> float | None:
        """Take one token from the token bucket `key` (refilled at `rate_per_second`, holding at
        most `burst` tokens).

        Returns None when allowed, else the seconds to wait until a token is available. Fails open
        (returns None) when the backing service is unreachable: rate limiting is protection, not
        correctness, so an outage of it must not take the service down.
        """
        ...

    async def leaky_bucket(
        self, key: str, amount: int, capacity: int, drain_per_second: float, overflow: int
    ) -> float | None:
        """Pour `amount` (e.g. bytes about to be served) into the leaky bucket `key`, which drains
        at `drain_per_second` and may hold `capacity + overflow`.

        Returns None when it fits (the level rises by `amount`), else the seconds until it would
        fit (nothing is added). An amount larger than the whole bucket costs the whole bucket, so
        it fits once the bucket is empty. Fails open like `rate_limit`.
        """
        ...

    async def check_ready(self) -> None:
        """Raise if the backing service cannot be reached."""
        ...

    async def close(self) -> None: ...


class DelegatingCoordinator:
    """A `Coordinator` that hands every call to `inner`: the base of the wrappers
    (`VersionedCoordinator`, `FailOpenCoordinator`), which override only what they change."""

    def __init__(self, inner: Coordinator) -> None:
        self.inner = inner

    def lock(
        self, name: str, ttl_seconds: float = 30.0, wait_seconds: float = 30.0
    ) -> AbstractAsyncContextManager[None]:
        return self.inner.lock(name, ttl_seconds=ttl_seconds, wait_seconds=wait_seconds)

    async def publish(self, channel: str, message: bytes) -> None:
        await self.inner.publish(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        return await self.inner.subscribe(channel)

    async def cache_get(self, key: str) -> bytes | None:
        return await self.inner.cache_get(key)

    async def cache_set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self.inner.cache_set(key, value, ttl_seconds)

    async def cache_delete(self, key: str) -> None:
        await self.inner.cache_delete(key)

    async def rate_limit(self, key: str, rate_per_second: float, burst: int) -> float | None:
        return await self.inner.rate_limit(key, rate_per_second, burst)

    async def leaky_bucket(
        self, key: str, amount: int, capacity: int, drain_per_second: float, overflow: int
    ) -> float | None:
        return await self.inner.leaky_bucket(key, amount, capacity, drain_per_second, overflow)

    async def check_ready(self) -> None:
        await self.inner.check_ready()

    async def close(self) -> None:
        await self.inner.close()
