"""What the thumbnail service holds for its lifetime (`rt.part(ThumbnailContext)`): the worker
pool, a cache of small thumbnails' bytes, and which stored thumbnail answered recent requests."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Self

from services.thumbnail.worker.formats import image_decoders
from services.thumbnail.worker.pool import WorkerLimits, WorkerPool
from shared.coordination.base import Coordinator
from shared.coordination.listener import ChannelListener
from shared.db.repositories.thumbnails import ThumbnailRecord
from shared.media.changes import CHANNEL, parse_change
from shared.runtime import Runtime
from shared.storage.bytes_cache import ObjectBytesCache

log = logging.getLogger(__name__)

CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_MAX_ENTRY_BYTES = 512 * 1024
LOOKUP_TTL_SECONDS = 5.0
"""How long a process answers a repeated request without asking the database again. Changes
(quarantine, purge) are announced and forgotten at once; this bounds a lost announcement."""
LOOKUP_MAX_ENTRIES = 50_000
WARM_MODULE = "services.thumbnail.worker.warm"
"""The forkserver's preload; by name, because importing it is the (worker-only) warm-up."""


def _small_thumbnails() -> ObjectBytesCache:
    """Recently served thumbnails' bytes (`shared.storage.bytes_cache`, as downloads keep)."""
    return ObjectBytesCache(CACHE_MAX_BYTES, CACHE_MAX_ENTRY_BYTES)


class RecentLookups:
    """Which stored thumbnail answered a request, for a few seconds, per media item.

    Keys start with (origin, media_id) so a change to one media item forgets all its entries. It
    remembers only while it hears those changes: until `listen` has subscribed (and after the
    subscription ends) every request asks the database.
    """

    def __init__(self, ttl_seconds: float = LOOKUP_TTL_SECONDS,
                 max_entries: int = LOOKUP_MAX_ENTRIES) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], dict[Hashable, tuple[float, ThumbnailRecord]]]
        self._entries = OrderedDict()
        self._listener = ChannelListener(CHANNEL, self._heard, self._entries.clear)

    @property
    def listening(self) -> bool:
        return self._listener.listening

    def get(self, media: tuple[str, str], request: Hashable) -> ThumbnailRecord | None:
        if not self.listening:
            return None
        found = self._entries.get(media, {}).get(request)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, media: tuple[str, str], request: Hashable, answer: ThumbnailRecord) -> None:
        if not self.listening:
            return
        self._entries.setdefault(media, {})[request] = (time.monotonic() + self.ttl_seconds, answer)
        self._entries.move_to_end(media)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, media: tuple[str, str]) -> None:
        self._entries.pop(media, None)

    async def listen(self, coordinator: Coordinator) -> None:
        """Hear media changes (`shared.media.changes`) and start remembering; until then (and
        while pub/sub is unavailable) every request reads the database. Cheap when listening:
        called per request, it resubscribes after a Redis outage ended the subscription."""
        await self._listener.ensure_listening(coordinator)

    def _heard(self, message: bytes) -> None:
        change = parse_change(message)
        if change is not None:
            self.forget(change)

    async def stop(self) -> None:
        await self._listener.close()


@dataclass
class ThumbnailContext:
    pool: WorkerPool
    image_formats: tuple[str, ...]
    cache: ObjectBytesCache = field(default_factory=_small_thumbnails)
    lookups: RecentLookups = field(default_factory=RecentLookups)

    @classmethod
    def build(cls, rt: Runtime) -> Self:
        config = rt.config.thumbnails
        limits = WorkerLimits(
            timeout_seconds=config.worker_timeout_seconds, memory_bytes=config.worker_memory_bytes
        )
        # Workers fork from a server that has already imported the renderer and its decoders,
        # and used them once (`worker.warm`).
        pool = WorkerPool(config.num_workers, limits, preload=(WARM_MODULE,))
        rt.activity.local_queues["thumbnail_workers"] = lambda: pool.jobs_waiting
        return cls(pool=pool, image_formats=image_decoders(config.types))

    async def close(self) -> None:
        await self.lookups.stop()
        await self.pool.close()
