"""Rate limiting, in-process or shared through Redis: token buckets and leaky buckets.

Token bucket (requests): a bucket holds at most `burst` tokens and refills at `rate_per_second`;
every hit takes one token. `hit` returns None when the hit is allowed, else how many seconds until a
token is available (what a `Retry-After` / `retry_after_ms` should say). A limited hit takes nothing.

Leaky bucket (bytes, matrix-media-repo's download bucket): each pour adds an amount to a level
that drains at `drain_per_second`; a pour that would take the level past `capacity + overflow` is
refused (and adds nothing), with the seconds until it would fit. `pour` answers like `hit`.

The Redis limiter runs the whole read-refill-take step as one Lua script, so it is atomic across
processes, and uses the Redis server's clock so that clock skew between app hosts does not matter.
If Redis fails the limiter FAILS OPEN: rate limiting protects the service, it is not part of its
correctness, so a Redis outage must not turn into every request being refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from .connect import RedisClient

logger = logging.getLogger(__name__)


class RateLimiter(ABC):
    """Token buckets (`hit`) and leaky buckets (`pour`), each named by a key."""

    @abstractmethod
    async def hit(self, key: str, rate_per_second: float, burst: int) -> float | None:
        """Take a token from bucket `key`: None if allowed, else the seconds to wait."""

    async def pour(
        self, key: str, amount: int, capacity: int, drain_per_second: float, overflow: int
    ) -> float | None:
        """Pour `amount` into leaky bucket `key`: None if it fits, else the seconds to wait."""
        _check_leaky_params(amount, capacity, drain_per_second, overflow)
        if amount == 0:
            return None
        return await self._pour(key, amount, capacity + overflow, drain_per_second)

    @abstractmethod
    async def _pour(
        self, key: str, amount: int, limit: int, drain_per_second: float
    ) -> float | None:
        """`pour` with checked parameters and `limit` = capacity + overflow."""


def _check_params(rate_per_second: float, burst: int) -> None:
    # A zero rate or burst would mean "never allowed" and divide by zero; that is a caller bug.
    if rate_per_second <= 0:
        raise ValueError(f"rate_per_second must be > 0, got {rate_per_second}")
    if burst < 1:
        raise ValueError(f"burst must be >= 1, got {burst}")


def take_token(
    tokens: float, elapsed: float, rate_per_second: float, burst: int
) -> tuple[float, float | None]:
    """Refill a bucket by `elapsed` seconds and try to take one token.

    Returns the new token count and None (allowed) or the seconds to wait (limited).
    """
    tokens = min(float(burst), tokens + max(0.0, elapsed) * rate_per_second)
    if tokens >= 1.0:
        return tokens - 1.0, None
    return tokens, (1.0 - tokens) / rate_per_second


def _check_leaky_params(amount: int, capacity: int, drain_per_second: float, overflow: int) -> None:
    if drain_per_second <= 0:
        raise ValueError(f"drain_per_second must be > 0, got {drain_per_second}")
    if amount < 0 or capacity < 0 or overflow < 0 or capacity + overflow <= 0:
        raise ValueError(
            f"amount, capacity and overflow must be >= 0 with room in the bucket, got "
            f"{amount}, {capacity}, {overflow}"
        )


def pour_into(
    level: float, elapsed: float, amount: float, limit: float, drain_per_second: float
) -> tuple[float, float | None]:
    """Drain a leaky bucket by `elapsed` seconds and try to pour `amount` into it.

    `limit` is the most it may hold (capacity plus overflow). Returns the new level and None
    (poured) or the seconds until `amount` would fit (nothing poured). An amount larger than the
    whole bucket costs the whole bucket, so it fits once the bucket is empty instead of never.
    """
    level = max(0.0, level - max(0.0, elapsed) * drain_per_second)
    amount = min(amount, limit)
    if level + amount <= limit:
        return level + amount, None
    return level, (level + amount - limit) / drain_per_second


class InProcessRateLimiter(RateLimiter):
    """Buckets in a dict, for a single process.

    Bounded by LRU eviction: the least recently hit bucket is the one most likely to have refilled
    completely, and a full bucket is the same as no bucket, so evicting it usually changes nothing.
    """

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_keys = max_keys
        self._clock = clock
        # key -> (tokens, time of last update)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        # key -> (leaky bucket level, time of last update); an evicted one is as good as empty.
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _remember(
        self, states: OrderedDict[str, tuple[float, float]], key: str, state: tuple[float, float]
    ) -> None:
        states[key] = state
        while len(states) > self._max_keys:
            states.popitem(last=False)

    async def hit(self, key: str, rate_per_second: float, burst: int) -> float | None:
        _check_params(rate_per_second, burst)
        now = self._clock()
        tokens, updated_at = self._buckets.pop(key, (float(burst), now))
        tokens, wait = take_token(tokens, now - updated_at, rate_per_second, burst)
        self._remember(self._buckets, key, (tokens, now))
        return wait

    async def _pour(
        self, key: str, amount: int, limit: int, drain_per_second: float
    ) -> float | None:
        now = self._clock()
        level, updated_at = self._levels.pop(key, (0.0, now))
        level, wait = pour_into(level, now - updated_at, amount, limit, drain_per_second)
        self._remember(self._levels, key, (level, now))
        return wait


# KEYS[1] = bucket hash; ARGV[1] = rate per second; ARGV[2] = burst.
# Returns the seconds to wait as a string ("0.000000" = allowed): Lua numbers returned to Redis
# are truncated to integers, so a float has to travel as text.
_TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1],
  'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
-- Once the bucket would be full again its state is the same as no state: let Redis drop it.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


# KEYS[1] = bucket hash; ARGV[1] = amount; ARGV[2] = limit (capacity + overflow);
# ARGV[3] = drain per second. Returns the seconds to wait as text, as the token bucket does; a
# refusal is never rounded down to "0.000000" (which would read as allowed).
_LEAKY_BUCKET_LUA = """
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local drain = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(state[1]) or 0
local ts = tonumber(state[2]) or now
level = math.max(0, level - math.max(0, now - ts) * drain)
amount = math.min(amount, limit)
local wait = 0
if level + amount <= limit then
  level = level + amount
else
  wait = math.max((level + amount - limit) / drain, 0.000001)
end
redis.call('HSET', KEYS[1],
  'level', string.format('%.6f', level), 'ts', string.format('%.6f', now))
-- Once drained the bucket is the same as no bucket: let Redis drop it then.
redis.call('PEXPIRE', KEYS[1], math.ceil(level / drain * 1000) + 1000)
return string.format('%.6f', wait)
"""


class ThrottledLog:
    """Log a warning at most once per `interval` seconds, counting what was suppressed.

    A dead Redis would otherwise log once per request.
    """

    def __init__(self, log: logging.Logger, interval: float = 60.0) -> None:
        self._log = log
        self._interval = interval
        self._next_at = 0.0
        self._suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        self._next_at = now + self._interval
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            self._log.warning(msg + " (%d similar warnings suppressed)", *args, suppressed)
        else:
            self._log.warning(msg, *args)


class RedisRateLimiter(RateLimiter):
    """Token buckets in Redis hashes `<namespace>:rl:<key>` and leaky buckets in
    `<namespace>:lb:<key>`, each updated atomically by a Lua script.

    Each call is bounded by `timeout_seconds` so a hung Redis cannot stall requests; after a failure
    Redis is not tried again for `retry_after_failure_seconds` (requests are let through meanwhile)
    so a blackholed Redis does not add a timeout to every request.
    """

    def __init__(
        self,
        client: RedisClient,
        namespace: str,
        timeout_seconds: float = 0.5,
        retry_after_failure_seconds: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = f"{namespace}:rl:"
        self._leaky_prefix = f"{namespace}:lb:"
        self._script = client.register_script(_TOKEN_BUCKET_LUA)
        self._leaky_script = client.register_script(_LEAKY_BUCKET_LUA)
        self._timeout = timeout_seconds
        self._retry_after_failure = retry_after_failure_seconds
        self._skip_until = 0.0
        self._log = ThrottledLog(logger)

    async def hit(self, key: str, rate_per_second: float, burst: int) -> float | None:
        _check_params(rate_per_second, burst)
        return await self._run(
            self._script, self._prefix + key, [repr(float(rate_per_second)), burst]
        )

    async def _pour(
        self, key: str, amount: int, limit: int, drain_per_second: float
    ) -> float | None:
        args: list[int | str] = [amount, limit, repr(float(drain_per_second))]
        return await self._run(self._leaky_script, self._leaky_prefix + key, args)

    async def _run(self, script: AsyncScript, key: str, args: list[int | str]) -> float | None:
        """Run a bucket script: the seconds it says to wait, or None (allowed, or Redis failed)."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                raw = await script(keys=[key], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = time.monotonic() + self._retry_after_failure
            self._log.warning("rate limiter failing open, Redis error: %r", exc)
            return None
        wait = float(raw)
        return wait if wait > 0 else None


class RateLimitedCoordinator:
    """The coordinators' `rate_limit` and `leaky_bucket`: both hand them to their limiter."""

    _rate_limiter: RateLimiter

    async def rate_limit(self, key: str, rate_per_second: float, burst: int) -> float | None:
        return await self._rate_limiter.hit(key, rate_per_second, burst)

    async def leaky_bucket(
        self, key: str, amount: int, capacity: int, drain_per_second: float, overflow: int
    ) -> float | None:
        return await self._rate_limiter.pour(key, amount, capacity, drain_per_second, overflow)
