"""What the thumbnail service holds for its lifetime: the worker pool and a cache of small
thumbnails, started by the app's start hook and reached through the runtime."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from services.thumbnail.formats import image_decoders
from services.thumbnail.workers import WorkerLimits, WorkerPool
from shared.runtime import Runtime

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
    """This process's thumbnail context, made on first use and closed with the runtime.

    The start hook makes it at start; making it here too keeps thumbnails working in an app
    assembled without the hook (only pre-generation needs the hook).
    """
    context = rt.extras.get(CONTEXT_KEY)
    if isinstance(context, ThumbnailContext):
        return context
    made = new_context(rt)
    rt.extras[CONTEXT_KEY] = made
    rt.closers.append(made.pool.close)
    return made


def new_context(rt: Runtime) -> ThumbnailContext:
    config = rt.config.thumbnails
    limits = WorkerLimits(
        timeout_seconds=config.worker_timeout_seconds, memory_bytes=config.worker_memory_bytes
    )
    pool = WorkerPool(config.num_workers, limits, preload=WORKER_PRELOAD)
    return ThumbnailContext(pool=pool, image_formats=image_decoders(config.types))
