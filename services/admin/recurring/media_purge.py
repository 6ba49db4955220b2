"""Recurring purges of cached remote media (`downloads.expireAfterDays`) and of thumbnails
(`thumbnails.expireAfterDays`), machine 0 only, as matrix-media-repo's recurring tasks.

Remote media not downloaded for that many days is forgotten with its thumbnails (a later request
fetches it again over federation), except pinned and quarantined media (the quarantine must keep
refusing those bytes); thumbnails older than that are forgotten (a later request generates them
again). The deleting itself is `shared.media.purge`'s.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services.admin.recurring.schedule import Stop, start_recurring
from shared.db.repositories.media_selection import MediaSelector, select_batch
from shared.db.repositories.thumbnails import thumbnails_created_before
from shared.media.purge import forget_media, forget_thumbnail
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, task

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
BATCH = 500
PURGE_INTERVAL_SECONDS = 3600.0
REMOTE_TASK = "recurring_purge_remote_media"
THUMBNAIL_TASK = "recurring_purge_thumbnails"


def _now_ms() -> int:
    return int(time.time() * 1000)


async def purge_remote_media(rt: Runtime, now_ms: int | None = None) -> int:
    """Forget remote media unused for `downloads.expireAfterDays`; return how many (0 when off)."""
    days = rt.config.downloads.expire_after_days
    if days <= 0:
        return 0
    cutoff = (now_ms if now_ms is not None else _now_ms()) - days * DAY_MS
    selector = MediaSelector(not_origins=tuple(hs.name for hs in rt.config.homeservers),
                             used_before=cutoff, quarantined=False)
    purged = 0
    after: tuple[str, str] | None = None
    while True:
        async with rt.sessions() as session:
            batch = await select_batch(session, selector, after, BATCH)
        for record in batch:
            purged += await forget_media(rt, record.origin, record.media_id)
        if len(batch) < BATCH:
            break
        after = (batch[-1].origin, batch[-1].media_id)
    if purged:
        log.info("purged %d remote media unused for %d days", purged, days)
    return purged


async def purge_old_thumbnails(rt: Runtime, now_ms: int | None = None) -> int:
    """Forget thumbnails older than `thumbnails.expireAfterDays`; return how many (0 when off)."""
    days = rt.config.thumbnails.expire_after_days
    if days <= 0:
        return 0
    cutoff = (now_ms if now_ms is not None else _now_ms()) - days * DAY_MS
    purged = 0
    while True:
        async with rt.sessions() as session:
            batch = await thumbnails_created_before(session, cutoff, BATCH)
        for thumbnail in batch:  # each forgotten one leaves the query, so asking again goes on
            await forget_thumbnail(rt, thumbnail)
        purged += len(batch)
        if len(batch) < BATCH:
            break
    if purged:
        log.info("purged %d thumbnails older than %d days", purged, days)
    return purged


@task(REMOTE_TASK)
async def _remote_media_round(ctx: TaskContext) -> dict[str, Any]:
    return {"total_removed": await purge_remote_media(ctx.runtime)}


@task(THUMBNAIL_TASK)
async def _thumbnail_round(ctx: TaskContext) -> dict[str, Any]:
    return {"total_removed": await purge_old_thumbnails(ctx.runtime)}


async def start_remote_media_purge(
    rt: Runtime, interval_seconds: float = PURGE_INTERVAL_SECONDS
) -> Stop | None:
    return await start_recurring(rt, REMOTE_TASK, interval_seconds,
                                 enabled=rt.config.downloads.expire_after_days > 0)


async def start_thumbnail_purge(
    rt: Runtime, interval_seconds: float = PURGE_INTERVAL_SECONDS
) -> Stop | None:
    return await start_recurring(rt, THUMBNAIL_TASK, interval_seconds,
                                 enabled=rt.config.thumbnails.expire_after_days > 0)
