"""`Coordinator` backed by Redis, for clusters of processes (redis-py asyncio).

Key layout (everything under `<namespace>:` so several deployments can share one Redis):

* `<ns>:lock:<name>`   lock token, `SET NX PX ttl`, released by a compare-and-delete Lua script
* `<ns>:cache:<key>`   cache value, `SET PX ttl`
* `<ns>:rl:<key>`      token bucket hash (see `ratelimit.py`)
* `<ns>:lb:<key>`      leaky bucket hash (see `ratelimit.py`)
* `<ns>:<channel>`     pub/sub channel

Locks: while held, a background task renews the TTL every ttl/3, so a long holder keeps the lock
and a dead holder's lock expires within `ttl_seconds`. If the renewal finds the lock gone (Redis
lost it, or this process stalled for longer than the TTL) it logs an error; the holder is not
interrupted, so work protected by a lock must still be safe to run twice (idempotent writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from .base import CoordinatorUnavailable, LockNotAcquired, Subscription
from .connect import RedisClient, prepare_pubsub, redis_client
from .ratelimit import RateLimitedCoordinator, RedisRateLimiter, ThrottledLog

logger = logging.getLogger(__name__)

# Delete the lock only if we still own it: after an expiry someone else may hold it.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Extend the lock only if we still own it; 0 tells the renewal task that the lock was lost.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_POLL_MIN_SECONDS = 0.005
_POLL_MAX_SECONDS = 0.1
_SUBSCRIBE_CONFIRM_SECONDS = 5.0


REDIS_ERRORS = (RedisError, OSError)
"""What redis-py raises when Redis cannot be reached (TimeoutError is an OSError)."""


@contextmanager
def _reaching_redis(what: str) -> Iterator[None]:
    """Turn Redis's own errors into the coordinator's `CoordinatorUnavailable`."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise CoordinatorUnavailable(f"Redis unavailable ({what}): {exc!r}") from exc


def _ms(seconds: float) -> int:
    # PX/PEXPIRE need a positive integer; round up so a tiny TTL does not become "no TTL".
    return max(1, int(seconds * 1000 + 0.999))


class RedisSubscription:
    """One channel on its own PubSub connection (a subscribed connection can do nothing else)."""

    def __init__(self, pubsub: PubSub, channel: str, owner: RedisCoordinator) -> None:
        self._pubsub = pubsub
        self._channel = channel
        self._owner = owner
        self._closed = False
        self._log = ThrottledLog(logger, interval=30.0)

    async def wait_subscribed(self) -> None:
        """Wait for Redis to confirm the SUBSCRIBE, so that a publish after `subscribe()`
        returns is guaranteed to reach this subscriber."""
        deadline = time.monotonic() + _SUBSCRIBE_CONFIRM_SECONDS
        while time.monotonic() < deadline:
            with _reaching_redis("subscribe"):
                msg = await self._pubsub.get_message(timeout=deadline - time.monotonic())
            if msg is not None and msg["type"] == "subscribe":
                return
        raise CoordinatorUnavailable(f"Redis did not confirm SUBSCRIBE to {self._channel!r}")

    async def get(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while not self._closed:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                msg = await self._pubsub.get_message(timeout=remaining)
            except (*REDIS_ERRORS, RuntimeError) as exc:
                if self._closed:  # closed by another task while we were reading
                    return None
                raise CoordinatorUnavailable(f"Redis subscription lost: {exc!r}") from exc
            if msg is not None and msg["type"] == "message":
                data: bytes = msg["data"]
                return data
            if time.monotonic() >= deadline:
                return None
        return None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Iteration is for long-lived listeners: ride out Redis outages instead of ending.
        # redis-py reconnects and re-subscribes on the next read; messages published while
        # disconnected are lost (pub/sub is fire-and-forget).
        backoff = 0.1
        while not self._closed:
            try:
                msg = await self.get(timeout=1.0)
            except CoordinatorUnavailable as exc:
                self._log.warning("subscription to %r failed, retrying: %r", self._channel, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if msg is not None:
                yield msg

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._owner._subscriptions.discard(self)
        try:
            await self._pubsub.aclose()
        except REDIS_ERRORS as exc:
            logger.debug("error closing subscription to %r: %r", self._channel, exc)


class RedisCoordinator(RateLimitedCoordinator):
    """Cluster-wide coordination through one Redis (standalone or behind a proxy/sentinel URL)."""

    def __init__(
        self,
        url: str,
        namespace: str = "mmr",
        *,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self._client: RedisClient = redis_client(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            # Detect connections silently dropped by a load balancer/NAT before using them.
            health_check_interval=30,
        )
        self._ns = namespace
        self._release_script = self._client.register_script(_RELEASE_LUA)
        self._renew_script = self._client.register_script(_RENEW_LUA)
        self._rate_limiter = RedisRateLimiter(self._client, namespace)
        self._subscriptions: set[RedisSubscription] = set()
        # Strong references to fire-and-forget tasks (asyncio only keeps weak ones): lock
        # releases, which close() lets finish, and lock renewals, which close() cancels.
        self._background: set[asyncio.Task[Any]] = set()
        self._renewals: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_config(cls, url: str, namespace: str = "mmr") -> RedisCoordinator:
        return cls(url, namespace)

    @property
    def namespace(self) -> str:
        return self._ns

    def lock_key(self, name: str) -> str:
        """The Redis key holding lock `name` (for diagnostics and tests)."""
        return f"{self._ns}:lock:{name}"

    def _cache_key(self, key: str) -> str:
        return f"{self._ns}:cache:{key}"

    def _channel(self, channel: str) -> str:
        return f"{self._ns}:{channel}"

    def _spawn(
        self, coro: Coroutine[Any, Any, Any], into: set[asyncio.Task[Any]] | None = None
    ) -> asyncio.Task[Any]:
        tasks = self._background if into is None else into
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    # -- locks ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def lock(
        self, name: str, ttl_seconds: float = 30.0, wait_seconds: float = 30.0
    ) -> AsyncIterator[None]:
        token = await self.acquire(name, ttl_seconds, wait_seconds)
        owner = asyncio.current_task()
        renewal = self._spawn(
            self._renew_while_held(name, token, ttl_seconds, owner), into=self._renewals
        )
        try:
            yield
        finally:
            renewal.cancel()
            # Shielded: a cancelled holder must still release, or others wait for the TTL.
            await asyncio.shield(self._spawn(self.release(name, token)))

    async def acquire(self, name: str, ttl_seconds: float, wait_seconds: float) -> str:
        """Take lock `name` WITHOUT renewal and return its token; prefer `lock()`.

        The lock expires after `ttl_seconds` unless `release`d.
        """
        key = self.lock_key(name)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_seconds
        delay = _POLL_MIN_SECONDS
        while True:
            if await self._try_set(key, token, _ms(ttl_seconds)):
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockNotAcquired(name)
            # Jittered exponential backoff so waiters from many processes don't poll in step.
            await asyncio.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, _POLL_MAX_SECONDS)

    async def _try_set(self, key: str, token: str, ttl_ms: int) -> bool:
        try:
            with _reaching_redis("lock"):
                return bool(await self._client.set(key, token, nx=True, px=ttl_ms))
        except asyncio.CancelledError:
            # The SET may have reached Redis before we were cancelled; nobody would release it.
            self._spawn(self._release_key(key, token))
            raise

    async def release(self, name: str, token: str) -> None:
        """Release lock `name` if `token` still holds it. Errors are logged, not raised: the
        lock expires by itself, and raising here would hide the holder's own exception."""
        await self._release_key(self.lock_key(name), token)

    async def _release_key(self, key: str, token: str) -> None:
        try:
            await self._release_script(keys=[key], args=[token])
        except REDIS_ERRORS as exc:
            logger.warning("could not release lock %s (it will expire): %r", key, exc)

    async def _renew_while_held(
        self, name: str, token: str, ttl_seconds: float, owner: asyncio.Task[Any] | None
    ) -> None:
        key = self.lock_key(name)
        interval = ttl_seconds / 3
        while True:
            await asyncio.sleep(interval)
            if owner is not None and owner.done():
                # The holder ended without releasing: let the lock expire as if it had crashed.
                return
            try:
                renewed = await self._renew_script(keys=[key], args=[token, _ms(ttl_seconds)])
            except REDIS_ERRORS as exc:
                # Keep trying: the lock is still ours until its TTL runs out.
                logger.warning("could not renew lock %s: %r", key, exc)
                continue
            if not renewed:
                logger.error("lock %s was lost while held (expired or taken over)", key)
                return

    # -- pub/sub -------------------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        with _reaching_redis("publish"):
            await self._client.publish(self._channel(channel), message)

    async def subscribe(self, channel: str) -> Subscription:
        with _reaching_redis("subscribe"):
            await prepare_pubsub(self._client)
        pubsub = self._client.pubsub()
        sub = RedisSubscription(pubsub, channel, self)
        try:
            with _reaching_redis("subscribe"):
                await pubsub.subscribe(self._channel(channel))
            await sub.wait_subscribed()
        except BaseException:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()
            raise
        self._subscriptions.add(sub)
        return sub

    # -- cache ---------------------------------------------------------------------------------

    async def cache_get(self, key: str) -> bytes | None:
        with _reaching_redis("cache"):
            value = await self._client.get(self._cache_key(key))
        # The client does not decode responses, so this is bytes; the check is for the type checker.
        return value.encode() if isinstance(value, str) else value

    async def cache_set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            # Already expired; Redis rejects a zero/negative PX.
            await self.cache_delete(key)
            return
        with _reaching_redis("cache"):
            await self._client.set(self._cache_key(key), value, px=_ms(ttl_seconds))

    async def cache_delete(self, key: str) -> None:
        with _reaching_redis("cache"):
            await self._client.delete(self._cache_key(key))

    # -- lifecycle -----------------------------------------------------------------------------

    async def check_ready(self) -> None:
        with _reaching_redis("ping"):
            await self._client.ping()

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        for task in list(self._renewals):
            task.cancel()
        await asyncio.gather(*self._renewals, *self._background, return_exceptions=True)
        await self._client.aclose()
