"""A bounded work queue between processes: each entry is handled by one consumer.

In a cluster it is a Redis stream read through a consumer group, so each entry goes to one
consumer, and an entry whose consumer died unacknowledged is claimed by another. In the embedded
default it is an in-process asyncio queue. Either way it is bounded: what it carries must be an
optimisation (a dropped entry only costs doing that work later, on demand).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.exceptions import ResponseError

from .base import CoordinatorUnavailable
from .connect import RedisClient, redis_client
from .redis import REDIS_ERRORS

log = logging.getLogger(__name__)

Entry = dict[str, str]
MAX_QUEUED = 10_000
BLOCK_MS = 2_000
CLAIM_IDLE_MS = 120_000
"""An entry read but not acknowledged for this long belongs to a dead consumer: take it over."""
CLAIM_EVERY_SECONDS = 30.0
RETRY_MAX_SECONDS = 10.0


class WorkQueue(Protocol):
    async def put(self, entry: Entry) -> None:
        """Queue `entry`; raises `CoordinatorUnavailable` when the queue cannot be reached."""
        ...

    def consume(self, consumer: str) -> AsyncIterator[Entry]:
        """Entries one at a time, each acknowledged when the consumer asks for the next."""
        ...

    async def depth(self) -> int:
        """Entries waiting for a consumer or being handled unacknowledged (a metric)."""
        ...

    async def close(self) -> None: ...


class InProcessWorkQueue:
    def __init__(self, name: str, max_queued: int = MAX_QUEUED) -> None:
        self.name = name
        self._queue: asyncio.Queue[Entry] = asyncio.Queue(max_queued)

    async def put(self, entry: Entry) -> None:
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            log.warning("work queue %s is full; dropping %s", self.name, entry)

    async def consume(self, consumer: str) -> AsyncIterator[Entry]:
        while True:
            yield await self._queue.get()

    async def depth(self) -> int:
        return self._queue.qsize()

    async def close(self) -> None:
        return None


def _decoded(fields: dict[bytes, bytes]) -> Entry:
    return {key.decode(): value.decode() for key, value in fields.items()}


class RedisWorkQueue:
    def __init__(self, url: str, stream: str, group: str) -> None:
        # Reads block for BLOCK_MS, so the socket must wait longer than that.
        self._client: RedisClient = redis_client(url, socket_timeout=BLOCK_MS / 1000 + 10,
                                             socket_connect_timeout=5)
        self.stream = stream
        self.group = group

    async def put(self, entry: Entry) -> None:
        fields: Any = entry
        try:
            await self._client.xadd(self.stream, fields, maxlen=MAX_QUEUED, approximate=True)
        except REDIS_ERRORS as exc:
            raise CoordinatorUnavailable(f"work queue {self.stream}: {exc!r}") from exc

    async def _ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _claim_stale(self, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer = await self._client.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=10
        )
        return list(answer[1])

    async def _read(self, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer: Any = await self._client.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=10, block=BLOCK_MS
        )
        return [entry for _, entries in answer or [] for entry in entries]

    async def consume(self, consumer: str) -> AsyncIterator[Entry]:
        backoff = 0.5
        claimed_at = 0.0
        while True:
            try:
                await self._ensure_group()
                entries: list[tuple[bytes, dict[bytes, bytes]]] = []
                if time.monotonic() - claimed_at > CLAIM_EVERY_SECONDS:
                    claimed_at = time.monotonic()
                    entries = await self._claim_stale(consumer)
                entries = entries or await self._read(consumer)
                for entry_id, fields in entries:
                    if fields:  # a claimed entry trimmed from the stream has no fields
                        yield _decoded(fields)
                    await self._client.xack(self.stream, self.group, entry_id)
                backoff = 0.5
            except REDIS_ERRORS as exc:
                log.warning("work queue %s unavailable, retrying: %r", self.stream, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)

    async def depth(self) -> int:
        try:
            groups: Any = await self._client.xinfo_groups(self.stream)
        except ResponseError:  # no stream yet: nothing was ever queued
            return 0
        except REDIS_ERRORS as exc:
            raise CoordinatorUnavailable(f"work queue {self.stream}: {exc!r}") from exc
        for group in groups:
            name = group["name"]
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                # `lag` (entries never read by the group) is None when Redis cannot tell.
                lag = group.get("lag")
                if lag is None:
                    lag = await self._client.xlen(self.stream)
                return int(lag) + int(group["pending"])
        return int(await self._client.xlen(self.stream))

    async def close(self) -> None:
        await self._client.aclose()


def make_work_queue(redis_url: str | None, stream: str, group: str) -> WorkQueue:
    """A Redis stream when Redis is configured (clusters), else an in-process queue."""
    if redis_url:
        return RedisWorkQueue(redis_url, stream, group)
    return InProcessWorkQueue(stream)
