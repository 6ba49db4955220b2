"""Recurring background work that only machine 0 runs (as matrix-media-repo's task scheduler).

`start_recurring` turns "run task X every N seconds" into a `make_app` start hook: on machine 0,
when enabled, it schedules the task once at start and then every interval (not while the
previous round is unfinished); elsewhere it does nothing. The task functions are registered
at import (`@task`) like every task, so an interrupted round resumes after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from shared.cluster.leadership import while_machine_zero
from shared.db.repositories.tasks import delete_finished_tasks_before, list_tasks
from shared.ids.machine_id import BACKGROUND_MACHINE_ID
from shared.runtime import Runtime
from shared.tasks.schedule import create_task, now_ms

log = logging.getLogger(__name__)

Stop = Callable[[], Awaitable[None]]
KEEP_FINISHED_ROUNDS_MS = 86_400_000
"""Finished rounds stay visible in `tasks/all` for a day."""


async def schedule_round(rt: Runtime, task_name: str) -> int | None:
    """Create one round of `task_name` unless one is unfinished; the new task's id."""
    async with rt.sessions() as session:
        if any(t.name == task_name for t in await list_tasks(session, include_finished=False)):
            return None
        await delete_finished_tasks_before(session, task_name, now_ms() - KEEP_FINISHED_ROUNDS_MS)
        await session.commit()
    return (await create_task(rt, task_name, {}, created_by="recurring")).id


async def _schedule_forever(rt: Runtime, task_name: str, interval_seconds: float) -> None:
    while True:
        try:
            if rt.runs_background_tasks:  # asked each round: the right to run tasks may move
                await schedule_round(rt, task_name)
        except Exception:
            # A failed round (database restarting) must not end the schedule: the next retries.
            log.exception("could not schedule %s", task_name)
        await asyncio.sleep(interval_seconds)


async def start_recurring(
    rt: Runtime, task_name: str, interval_seconds: float, enabled: bool = True
) -> Stop | None:
    """Schedule the task `task_name` every `interval_seconds` on machine 0 while it holds its
    lease (a standby starts when it takes over); return the stop."""
    if rt.machine_id != BACKGROUND_MACHINE_ID or not enabled:
        return None

    def schedule() -> Coroutine[Any, Any, None]:
        return _schedule_forever(rt, task_name, interval_seconds)

    runner = schedule() if rt.presence is None else while_machine_zero(rt.presence, task_name, schedule)
    loop_task = asyncio.create_task(runner, name=task_name)

    async def stop() -> None:
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task

    return stop
