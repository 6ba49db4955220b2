"""Expiring leases and membership records: who holds a machine ID, who is in the cluster.

A lease is a key whose value names its holder (a JSON record carrying the holder's secret
`token`) and which expires unless renewed. `claim` takes a vacant lease, renews one the caller
already holds, or returns the record of whoever else holds it, in one atomic step. A membership
record is a key with the same expiry plus an entry in an index set, so a reader can list every
live record and drop the index entries of records that expired.

Two implementations: Redis (clusters) and in-process (the embedded default, one process). Callers
give a `prefix`; for Redis Cluster it carries a hash tag (`mmr:{cluster:ab12}`), so every key of
one cluster lands in one slot and the multi-key scripts below are allowed.

Every value written here has a format version (`"v"`); a record of an unknown version is
reported as such (a lease) or skipped with a warning (a member), never a crash.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar

from redis.exceptions import RedisError

from shared.coordination.connect import RedisClient, redis_client

log = logging.getLogger(__name__)

RECORD_VERSION = 1
P = ParamSpec("P")
T = TypeVar("T")


class LeaseStoreUnavailable(Exception):
    """The backend holding the leases cannot be reached (the lease may still be valid)."""


def _unavailable_on_error(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise LeaseStoreUnavailable(repr(exc)) from exc

    return wrapper

# Take the lease if vacant or already ours (same token): 1. Someone else's: their record.
_CLAIM_LUA = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if not (ok and type(record) == 'table' and record['token'] == ARGV[1]) then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_RELEASE_LUA = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' and record['token'] == ARGV[1] then
    return redis.call('DEL', KEYS[1])
  end
end
return 0
"""

_PUBLISH_MEMBER_LUA = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""


def encode_record(token: str, fields: Mapping[str, Any]) -> bytes:
    return json.dumps({"v": RECORD_VERSION, **fields, "token": token}, sort_keys=True).encode()


def decode_record(raw: bytes | str | None) -> dict[str, Any] | None:
    """The fields of a stored record, None if absent; `{"v": n}` alone for an unknown format."""
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        log.warning("ignoring a lease/member record that is not JSON: %.80r", raw)
        return {"v": None}
    if not isinstance(record, dict) or record.get("v") != RECORD_VERSION:
        version = record.get("v") if isinstance(record, dict) else None
        log.warning("ignoring a lease/member record of unknown format version %r", version)
        return {"v": version}
    return record


def public_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record without its secret token (what may be shown or sent over HTTP)."""
    return {key: value for key, value in record.items() if key != "token"}


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000 + 0.999))


class LeaseStore(Protocol):
    """Atomic lease and membership operations under one key prefix."""

    async def claim(
        self, name: str, token: str, fields: Mapping[str, Any], ttl_seconds: float
    ) -> dict[str, Any] | None:
        """Take or renew lease `name` for `token`: None on success, else the holder's record."""
        ...

    async def release(self, name: str, token: str) -> None:
        """Give lease `name` up if `token` still holds it."""
        ...

    async def holder(self, name: str) -> dict[str, Any] | None: ...

    async def publish_member(
        self, member_id: str, fields: Mapping[str, Any], ttl_seconds: float
    ) -> None: ...

    async def remove_member(self, member_id: str) -> None: ...

    async def members(self) -> list[dict[str, Any]]:
        """Every live membership record (of a known format)."""
        ...

    async def close(self) -> None: ...


class RedisLeaseStore:
    """Leases in Redis: one key per lease, `PX` expiry, Lua for compare-and-set."""

    def __init__(self, client: RedisClient, prefix: str, owns_client: bool = True) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client
        self._claim = client.register_script(_CLAIM_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._publish = client.register_script(_PUBLISH_MEMBER_LUA)

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisLeaseStore:
        # Short timeouts: a heartbeat that hangs on a dead Redis would outlive the lease.
        client = redis_client(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return cls(client, prefix)

    def _lease_key(self, name: str) -> str:
        return f"{self._prefix}:lease:{name}"

    def _member_key(self, member_id: str) -> str:
        return f"{self._prefix}:member:{member_id}"

    @property
    def _index_key(self) -> str:
        return f"{self._prefix}:members"

    @_unavailable_on_error
    async def claim(
        self, name: str, token: str, fields: Mapping[str, Any], ttl_seconds: float
    ) -> dict[str, Any] | None:
        result = await self._claim(
            keys=[self._lease_key(name)],
            args=[token, encode_record(token, fields), _ms(ttl_seconds)],
        )
        if result == 1:
            return None
        return decode_record(result) or {"v": None}

    @_unavailable_on_error
    async def release(self, name: str, token: str) -> None:
        await self._release(keys=[self._lease_key(name)], args=[token])

    @_unavailable_on_error
    async def holder(self, name: str) -> dict[str, Any] | None:
        return decode_record(await self._client.get(self._lease_key(name)))

    @_unavailable_on_error
    async def publish_member(
        self, member_id: str, fields: Mapping[str, Any], ttl_seconds: float
    ) -> None:
        await self._publish(
            keys=[self._member_key(member_id), self._index_key],
            args=[member_id, encode_record("", fields), _ms(ttl_seconds)],
        )

    @_unavailable_on_error
    async def remove_member(self, member_id: str) -> None:
        await self._client.delete(self._member_key(member_id))
        await self._client.srem(self._index_key, member_id)

    @_unavailable_on_error
    async def members(self) -> list[dict[str, Any]]:
        ids = sorted(m.decode() if isinstance(m, bytes) else m
                     for m in await self._client.smembers(self._index_key))
        if not ids:
            return []
        values = await self._client.mget([self._member_key(m) for m in ids])
        gone = [m for m, value in zip(ids, values, strict=True) if value is None]
        if gone:
            await self._client.srem(self._index_key, *gone)
        records = [decode_record(value) for value in values if value is not None]
        return [public_fields(r) for r in records if r is not None and r.get("v") == RECORD_VERSION]

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class InProcessLeaseStore:
    """Leases in this process's memory (the embedded default: nobody else to share with)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[bytes, float]] = {}

    def _get(self, key: str) -> bytes | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._values[key]
            return None
        return entry[0]

    def _set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._values[key] = (value, time.monotonic() + ttl_seconds)

    async def claim(
        self, name: str, token: str, fields: Mapping[str, Any], ttl_seconds: float
    ) -> dict[str, Any] | None:
        key = f"lease:{name}"
        current = decode_record(self._get(key))
        if current is not None and current.get("token") != token:
            return current
        self._set(key, encode_record(token, fields), ttl_seconds)
        return None

    async def release(self, name: str, token: str) -> None:
        key = f"lease:{name}"
        current = decode_record(self._get(key))
        if current is not None and current.get("token") == token:
            del self._values[key]

    async def holder(self, name: str) -> dict[str, Any] | None:
        return decode_record(self._get(f"lease:{name}"))

    async def publish_member(
        self, member_id: str, fields: Mapping[str, Any], ttl_seconds: float
    ) -> None:
        self._set(f"member:{member_id}", encode_record("", fields), ttl_seconds)

    async def remove_member(self, member_id: str) -> None:
        self._values.pop(f"member:{member_id}", None)

    async def members(self) -> list[dict[str, Any]]:
        found = [decode_record(self._get(key)) for key in sorted(self._values)
                 if key.startswith("member:")]
        return [public_fields(r) for r in found if r is not None and r.get("v") == RECORD_VERSION]

    async def close(self) -> None:
        self._values.clear()


def make_lease_store(redis_url: str | None, prefix: str) -> LeaseStore:
    """Redis when configured (clusters), else in-process."""
    if redis_url:
        return RedisLeaseStore.from_url(redis_url, prefix)
    return InProcessLeaseStore()
