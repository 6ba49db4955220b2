"""A format version on every value mmr passes through Redis (cached values, pub/sub messages).

During a rolling upgrade processes of two versions share one Redis. Each value is written as
`mmr:<version>\\n<payload>`; a reader that meets another version (or a value without the header)
logs a warning and ignores it: a cache entry is a miss, a message is skipped. Cache entries of
this format live under their own keys (`v<version>:<key>`), so a process of an older format never
reads them as its own.

`VersionedCoordinator` applies this to any `Coordinator`; the lease and membership records carry
their own version (`shared/coordination/leases.py`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from .base import DelegatingCoordinator, Subscription
from .ratelimit import ThrottledLog

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_HEADER = b"mmr:%d\n" % FORMAT_VERSION
_unknown = ThrottledLog(log, interval=30.0)


def seal(payload: bytes) -> bytes:
    return _HEADER + payload


def unseal(raw: bytes, where: str) -> bytes | None:
    """The payload of a value of this format; None (with a warning) for any other."""
    if raw.startswith(_HEADER):
        return raw[len(_HEADER):]
    version = raw.split(b"\n", 1)[0][:20] if raw.startswith(b"mmr:") else b"none"
    _unknown.warning("ignoring a value of unknown format %r in %s (another mmr version?)",
                     version, where)
    return None


class VersionedSubscription:
    def __init__(self, inner: Subscription, channel: str) -> None:
        self._inner = inner
        self._channel = channel

    async def get(self, timeout: float) -> bytes | None:
        # An unknown message counts as none: callers treat None as "nothing yet" and re-check.
        message = await self._inner.get(timeout)
        return None if message is None else unseal(message, f"channel {self._channel}")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for message in self._inner:
            payload = unseal(message, f"channel {self._channel}")
            if payload is not None:
                yield payload

    async def close(self) -> None:
        await self._inner.close()


class VersionedCoordinator(DelegatingCoordinator):
    """`inner`, with cached values and messages sealed with the format version."""

    @staticmethod
    def _key(key: str) -> str:
        return f"v{FORMAT_VERSION}:{key}"

    async def publish(self, channel: str, message: bytes) -> None:
        await self.inner.publish(channel, seal(message))

    async def subscribe(self, channel: str) -> Subscription:
        return VersionedSubscription(await self.inner.subscribe(channel), channel)

    async def cache_get(self, key: str) -> bytes | None:
        raw = await self.inner.cache_get(self._key(key))
        return None if raw is None else unseal(raw, f"cache entry {key}")

    async def cache_set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self.inner.cache_set(self._key(key), seal(value), ttl_seconds)

    async def cache_delete(self, key: str) -> None:
        await self.inner.cache_delete(self._key(key))
