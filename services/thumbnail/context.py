"""What the thumbnail service holds for its lifetime: the worker pool and a cache of small
thumbnails, started by the app's start hook and reached through the runtime."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from services.thumbnail.formats import image_decoders
from services.thumbnail.workers import WorkerLimits, WorkerPool
from shared.runtime import Runtime

log = logging.getLogger(__name__)

CONTEXT_KEY = "thumbnail"
THUMBNAIL_JOB = "services.thumbnail.thumbnailer:make_thumbnail"
WORKER_PRELOAD = ("services.thumbnail.thumbnailer",)
CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_MAX_ENTRY_BYTES = 512 * 1024


class BytesCache:
    """Recently served thumbnails by location, least recently used out first.

    Safe without invalidation: locations are content addressed, so the bytes at one never change.
    """

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES, max_entry_bytes: int = CACHE_MAX_ENTRY_BYTES):
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._size = 0

    def get(self, datastore_id: str, location: str) -> bytes | None:
        data = self._entries.get((datastore_id, location))
        if data is not None:
            self._entries.move_to_end((datastore_id, location))
        return data

    def put(self, datastore_id: str, location: str, data: bytes) -> None:
        if len(data) > self.max_entry_bytes or (datastore_id, location) in self._entries:
            return
        self._entries[(datastore_id, location)] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)


@dataclass
class ThumbnailContext:
    pool: WorkerPool
    image_formats: tuple[str, ...]
    cache: BytesCache = field(default_factory=BytesCache)


def context_of(rt: Runtime) -> ThumbnailContext:
    context = rt.extras.get(CONTEXT_KEY)
    if not isinstance(context, ThumbnailContext):
        raise RuntimeError("the thumbnail service was not started (its start hook did not run)")
    return context


def new_context(rt: Runtime) -> ThumbnailContext:
    config = rt.config.thumbnails
    limits = WorkerLimits(
        timeout_seconds=config.worker_timeout_seconds, memory_bytes=config.worker_memory_bytes
    )
    pool = WorkerPool(config.num_workers, limits, preload=WORKER_PRELOAD)
    return ThumbnailContext(pool=pool, image_formats=image_decoders(config.types))


async def start_thumbnailing(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """Start hook: the worker pool (workers start on first use) and, when configured, the
    consumer that pre-generates thumbnails of new uploads."""
    from services.thumbnail.pregenerate import start_pregeneration

    context = new_context(rt)
    rt.extras[CONTEXT_KEY] = context
    stop_pregeneration = await start_pregeneration(rt) if rt.config.thumbnails.pregenerate else None

    async def stop() -> None:
        if stop_pregeneration is not None:
            await stop_pregeneration()
        rt.extras.pop(CONTEXT_KEY, None)
        await context.pool.close()

    return stop
