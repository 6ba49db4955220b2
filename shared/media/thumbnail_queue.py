"""The queue of new uploads whose thumbnails should be made ahead of time (`thumbnails.pregenerate`).

The upload service puts, the thumbnail service consumes, and neither imports the other. In a
cluster the queue is a Redis stream read through a consumer group, so each upload is handled by
one thumbnail process, and an entry whose consumer died unacknowledged is claimed by another. In
the embedded default it is an in-process asyncio queue. Either way it is bounded: pre-generation
is an optimisation, and an entry that is dropped only means a thumbnail is made on first request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shared.db.repositories.media import MediaRecord
from shared.runtime import Runtime

log = logging.getLogger(__name__)

EXTRAS_KEY = "thumbnail_queue"
STREAM = "mmr:thumbnails:pregenerate"
GROUP = "thumbnailers"
MAX_QUEUED = 10_000
BLOCK_MS = 2_000
CLAIM_IDLE_MS = 120_000
"""An entry read but not acknowledged for this long belongs to a dead consumer: take it over."""
CLAIM_EVERY_SECONDS = 30.0
RETRY_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class PregenerationRequest:
    origin: str
    media_id: str


class ThumbnailQueue(Protocol):
    async def put(self, request: PregenerationRequest) -> None: ...

    def consume(self, consumer: str) -> AsyncIterator[PregenerationRequest]:
        """Requests one at a time, each acknowledged when the consumer asks for the next."""
        ...

    async def close(self) -> None: ...


class InProcessThumbnailQueue:
    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self._queue: asyncio.Queue[PregenerationRequest] = asyncio.Queue(max_queued)

    async def put(self, request: PregenerationRequest) -> None:
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            log.warning("thumbnail pre-generation queue is full; skipping mxc://%s/%s",
                        request.origin, request.media_id)

    async def consume(self, consumer: str) -> AsyncIterator[PregenerationRequest]:
        while True:
            yield await self._queue.get()

    async def close(self) -> None:
        return None


def _request(fields: dict[bytes, bytes]) -> PregenerationRequest:
    return PregenerationRequest(fields[b"origin"].decode(), fields[b"media_id"].decode())


class RedisThumbnailQueue:
    def __init__(self, url: str, stream: str = STREAM) -> None:
        # Reads block for BLOCK_MS, so the socket must wait longer than that.
        self._client: Redis = Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 10,
                                             socket_connect_timeout=5)
        self.stream = stream

    async def put(self, request: PregenerationRequest) -> None:
        fields: Any = {"origin": request.origin, "media_id": request.media_id}
        await self._client.xadd(self.stream, fields, maxlen=MAX_QUEUED, approximate=True)

    async def _ensure_group(self) -> None:
        try:
            await self._client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _claim_stale(self, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer = await self._client.xautoclaim(
            self.stream, GROUP, consumer, min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=10
        )
        return list(answer[1])

    async def _read(self, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer: Any = await self._client.xreadgroup(
            GROUP, consumer, {self.stream: ">"}, count=10, block=BLOCK_MS
        )
        return [entry for _, entries in answer or [] for entry in entries]

    async def consume(self, consumer: str) -> AsyncIterator[PregenerationRequest]:
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
                        yield _request(fields)
                    await self._client.xack(self.stream, GROUP, entry_id)
                backoff = 0.5
            except (RedisError, OSError) as exc:
                log.warning("thumbnail pre-generation queue unavailable, retrying: %r", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)

    async def close(self) -> None:
        await self._client.aclose()


def thumbnail_queue(rt: Runtime) -> ThumbnailQueue:
    """This process's queue: made on first use, closed with the runtime."""
    queue = rt.extras.get(EXTRAS_KEY)
    if queue is None:
        url = rt.config.redis.effective_url
        made: ThumbnailQueue = RedisThumbnailQueue(url) if url else InProcessThumbnailQueue()
        rt.extras[EXTRAS_KEY] = made
        rt.closers.append(made.close)
        return made
    return queue  # type: ignore[return-value]


async def request_pregeneration(rt: Runtime, record: MediaRecord) -> None:
    """Queue `record` for thumbnails ahead of time, when configured. Never fails the caller: a
    missed entry only means the thumbnail is made on its first request."""
    if not rt.config.thumbnails.pregenerate:
        return
    try:
        await thumbnail_queue(rt).put(PregenerationRequest(record.origin, record.media_id))
    except Exception as exc:
        log.warning("could not queue thumbnails of %s: %r", record.mxc, exc)
