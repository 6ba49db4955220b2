"""The recurring purge of old URL previews (`urlPreviews.expireAfterDays`), machine 0 only.

`start_preview_purge` is a `make_app` start hook: on machine 0 with a non-zero expiry it purges
once at start and then every `PURGE_INTERVAL_SECONDS`; elsewhere it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from shared.db.repositories.previews import delete_previews_before
from shared.runtime import Runtime

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 3600.0
"""Previews are cached per hour, so purging more often than hourly finds nothing new."""
DAY_MS = 86_400_000


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


async def _purge_forever(rt: Runtime, interval_seconds: float) -> None:
    while True:
        try:
            await purge_old_previews(rt)
        except Exception:
            # A failed round (database restarting) must not end the task: the next one retries.
            log.exception("URL preview purge failed")
        await asyncio.sleep(interval_seconds)


async def start_preview_purge(
    rt: Runtime, interval_seconds: float = PURGE_INTERVAL_SECONDS
) -> Callable[[], Awaitable[None]] | None:
    """Start the periodic purge on machine 0; return the coroutine that stops it."""
    if not rt.runs_background_tasks or rt.config.url_previews.expire_after_days <= 0:
        return None
    task = asyncio.create_task(_purge_forever(rt, interval_seconds), name="preview-purge")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
