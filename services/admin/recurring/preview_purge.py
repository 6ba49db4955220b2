"""The recurring purge of old URL previews (`urlPreviews.expireAfterDays`), machine 0 only.

`start_preview_purge` is a `make_app` start hook: on machine 0 with a non-zero expiry it purges
once at start and then every `PURGE_INTERVAL_SECONDS`; elsewhere it does nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services.admin.recurring.schedule import Stop, start_recurring
from shared.db.repositories.previews import delete_previews_before
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, task

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600.0
"""Previews are cached per hour, so purging more often than hourly finds nothing new."""
DAY_MS = 86_400_000
PREVIEW_TASK = "recurring_purge_previews"


async def purge_old_previews(rt: Runtime, now_ms: int | None = None) -> int:
    """Delete previews older than `urlPreviews.expireAfterDays`; return how many (0 when off)."""
    days = rt.config.url_previews.expire_after_days
    if days <= 0:
        return 0
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    async with rt.sessions() as session:
        deleted = await delete_previews_before(session, now - days * DAY_MS)
        await session.commit()
    if deleted:
        log.info("purged %d URL previews older than %d days", deleted, days)
    return deleted


async def start_preview_purge(
    rt: Runtime, interval_seconds: float = PURGE_INTERVAL_SECONDS
) -> Stop | None:
    """Start the periodic purge on machine 0 when previews expire; return its stop coroutine."""
    return await start_recurring(rt, PREVIEW_TASK, interval_seconds,
                                 enabled=rt.config.url_previews.expire_after_days > 0)


@task(PREVIEW_TASK)
async def _preview_round(ctx: TaskContext) -> dict[str, Any]:
    return {"total_removed": await purge_old_previews(ctx.runtime)}
