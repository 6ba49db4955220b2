"""Recurring purges of cached remote media (`downloads.expireAfterDays`) and of thumbnails
(`thumbnails.expireAfterDays`), machine 0 only, as matrix-media-repo's recurring tasks.

Remote media not downloaded for that many days is forgotten with its thumbnails (a later request
fetches it again over federation); thumbnails older than that are forgotten (a later request
generates them again). Stored objects are shared by every row with the same bytes, so an object
is deleted only when no media or thumbnail row points at it any more, checked under the same
hash lock the writer (`shared.media.store`) takes before it reuses an object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from shared.background.recurring import Stop, start_recurring
from shared.db.repositories.media import MediaRecord, delete_media, remote_media_unused_since
from shared.db.repositories.thumbnails import (
    ThumbnailRecord,
    delete_thumbnail,
    delete_thumbnails,
    list_thumbnails,
    thumbnails_created_before,
)
from shared.media.changes import announce_media_changed
from shared.media.store import delete_if_unreferenced, hash_lock
from shared.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

DAY_MS = 86_400_000
BATCH = 500
PURGE_INTERVAL_SECONDS = 3600.0


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _in_batches(
    rt: Runtime,
    next_batch: Callable[[AsyncSession], Awaitable[list[T]]],
    forget: Callable[[Runtime, T], Awaitable[None]],
) -> int:
    """Forget what `next_batch` finds until a batch comes back short; return how many.

    Each forgotten item leaves the query's results, so asking again finds the next ones.
    """
    purged = 0
    while True:
        async with rt.sessions() as session:
            batch = await next_batch(session)
        for item in batch:
            await forget(rt, item)
        purged += len(batch)
        if len(batch) < BATCH:
            return purged


async def _forget_remote_media(rt: Runtime, record: MediaRecord) -> None:
    async with hash_lock(rt, record.sha256):
        async with rt.sessions() as session:
            thumbnails = await list_thumbnails(session, record.origin, record.media_id)
            await delete_thumbnails(session, record.origin, record.media_id)
            await delete_media(session, record.origin, record.media_id)
            await session.commit()
        await delete_if_unreferenced(rt, record.datastore_id, record.location)
    for thumbnail in thumbnails:
        async with hash_lock(rt, thumbnail.sha256):
            await delete_if_unreferenced(rt, thumbnail.datastore_id, thumbnail.location)
    await announce_media_changed(rt.coordinator, record.origin, record.media_id)


async def purge_remote_media(rt: Runtime, now_ms: int | None = None) -> int:
    """Forget remote media unused for `downloads.expireAfterDays`; return how many (0 when off)."""
    days = rt.config.downloads.expire_after_days
    if days <= 0:
        return 0
    cutoff = (now_ms if now_ms is not None else _now_ms()) - days * DAY_MS
    local_origins = [hs.name for hs in rt.config.homeservers]

    async def next_batch(session: AsyncSession) -> list[MediaRecord]:
        return await remote_media_unused_since(session, local_origins, cutoff, BATCH)

    purged = await _in_batches(rt, next_batch, _forget_remote_media)
    if purged:
        log.info("purged %d remote media unused for %d days", purged, days)
    return purged


async def _forget_thumbnail(rt: Runtime, thumbnail: ThumbnailRecord) -> None:
    async with hash_lock(rt, thumbnail.sha256):
        async with rt.sessions() as session:
            await delete_thumbnail(session, thumbnail.key)
            await session.commit()
        await delete_if_unreferenced(rt, thumbnail.datastore_id, thumbnail.location)
    await announce_media_changed(rt.coordinator, thumbnail.key.origin, thumbnail.key.media_id)


async def purge_old_thumbnails(rt: Runtime, now_ms: int | None = None) -> int:
    """Forget thumbnails older than `thumbnails.expireAfterDays`; return how many (0 when off)."""
    days = rt.config.thumbnails.expire_after_days
    if days <= 0:
        return 0
    cutoff = (now_ms if now_ms is not None else _now_ms()) - days * DAY_MS

    async def next_batch(session: AsyncSession) -> list[ThumbnailRecord]:
        return await thumbnails_created_before(session, cutoff, BATCH)

    purged = await _in_batches(rt, next_batch, _forget_thumbnail)
    if purged:
        log.info("purged %d thumbnails older than %d days", purged, days)
    return purged


async def start_remote_media_purge(
    rt: Runtime, interval_seconds: float = PURGE_INTERVAL_SECONDS
) -> Stop | None:
    return await start_recurring(rt, "remote-media-purge", purge_remote_media, interval_seconds,
                                 enabled=rt.config.downloads.expire_after_days > 0)


async def start_thumbnail_purge(
    rt: Runtime, interval_seconds: float = PURGE_INTERVAL_SECONDS
) -> Stop | None:
    return await start_recurring(rt, "thumbnail-purge", purge_old_thumbnails, interval_seconds,
                                 enabled=rt.config.thumbnails.expire_after_days > 0)
