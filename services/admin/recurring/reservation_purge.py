"""The recurring removal of async-upload IDs that expired unused, machine 0 only.

Expired reservations already stop counting against `maxPending` and answer 404; removing them
keeps the table from growing with every abandoned `/create`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services.admin.recurring.schedule import Stop, start_recurring
from shared.db.repositories.reservations import delete_expired_reservations
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, task

log = logging.getLogger(__name__)

PURGE_INTERVAL_SECONDS = 600.0
RESERVATION_TASK = "recurring_purge_expired_reservations"


async def purge_expired_reservations(rt: Runtime, now_ms: int | None = None) -> int:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    async with rt.sessions() as session:
        deleted = await delete_expired_reservations(session, now)
        await session.commit()
    if deleted:
        log.info("removed %d expired async-upload reservations", deleted)
    return deleted


async def start_reservation_purge(
    rt: Runtime, interval_seconds: float = PURGE_INTERVAL_SECONDS
) -> Stop | None:
    return await start_recurring(rt, RESERVATION_TASK, interval_seconds)


@task(RESERVATION_TASK)
async def _reservation_round(ctx: TaskContext) -> dict[str, Any]:
    return {"total_removed": await purge_expired_reservations(ctx.runtime)}
