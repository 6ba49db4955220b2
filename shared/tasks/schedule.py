"""Creating a task from any process, and waiting for one to end."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shared.coordination.base import CoordinatorUnavailable
from shared.db.repositories.tasks import TaskRecord, get_task, insert_task
from shared.runtime import Runtime
from shared.tasks.registry import lookup

log = logging.getLogger(__name__)

CHANNEL = "bg-tasks"
WAIT_POLL_SECONDS = 0.1


def now_ms() -> int:
    return int(time.time() * 1000)


async def create_task(
    rt: Runtime, name: str, params: dict[str, Any], created_by: str | None = None
) -> TaskRecord:
    """Record a task and tell machine 0 (which also polls, so a lost message only delays it)."""
    lookup(name)  # an unknown name is the caller's bug: refuse before recording anything
    async with rt.sessions() as session:
        record = await insert_task(session, name, params, now_ms(), created_by)
        await session.commit()
    try:
        await rt.coordinator.publish(CHANNEL, str(record.id).encode())
    except CoordinatorUnavailable as exc:
        log.warning("could not announce task %d, machine 0 will find it when it polls: %r",
                    record.id, exc)
    return record


async def wait_for_task(rt: Runtime, task_id: int, timeout_seconds: float) -> TaskRecord | None:
    """The task once finished, or its latest state after `timeout_seconds`; None if unknown."""
    deadline = time.monotonic() + timeout_seconds
    delay = 0.01
    while True:
        async with rt.sessions() as session:
            record = await get_task(session, task_id)
        if record is None or record.is_finished or time.monotonic() >= deadline:
            return record
        await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
        delay = min(delay * 2, WAIT_POLL_SECONDS)
