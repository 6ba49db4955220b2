"""What the thumbnail service holds for its lifetime: the worker pool and a cache of small
thumbnails, started by the app's start hook and reached through the runtime."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from services.thumbnail.formats import image_decoders
from services.thumbnail.workers import WorkerLimits, WorkerPool
from shared.db.repositories.thumbnails import ThumbnailRecord
from shared.runtime import Runtime

CONTEXT_KEY = "thumbnail"
THUMBNAIL_JOB = "services.thumbnail.thumbnailer:make_thumbnail"
WORKER_PRELOAD = ("services.thumbnail.thumbnailer",)
CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_MAX_ENTRY_BYTES = 512 * 1024
ANSWER_TTL_SECONDS = 5.0
"""How long a process answers a repeated request without asking the database again. Changes
(quarantine, purge) are announced and forgotten at once; this bounds a lost announcement."""
ANSWER_MAX_ENTRIES = 50_000


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


class AnswerCache:
    """Which stored thumbnail answered a request, for a few seconds, per media item.

    Keys start with (origin, media_id) so a change to one media item forgets all its entries.
    """

    def __init__(self, ttl_seconds: float = ANSWER_TTL_SECONDS,
                 max_entries: int = ANSWER_MAX_ENTRIES) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        # Off until the process listens for media changes (the start hook turns it on): without
        # a listener every request asks the database.
        self.enabled = False
        self._entries: OrderedDict[tuple[str, str], dict[Hashable, tuple[float, ThumbnailRecord]]]
        self._entries = OrderedDict()

    def get(self, media: tuple[str, str], request: Hashable) -> ThumbnailRecord | None:
        if not self.enabled:
            return None
        found = self._entries.get(media, {}).get(request)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, media: tuple[str, str], request: Hashable, answer: ThumbnailRecord) -> None:
        if not self.enabled:
            return
        self._entries.setdefault(media, {})[request] = (time.monotonic() + self.ttl_seconds, answer)
        self._entries.move_to_end(media)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, media: tuple[str, str]) -> None:
        self._entries.pop(media, None)


@dataclass
class ThumbnailContext:
    pool: WorkerPool
    image_formats: tuple[str, ...]
    cache: BytesCache = field(default_factory=BytesCache)
    answers: AnswerCache = field(default_factory=AnswerCache)


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
