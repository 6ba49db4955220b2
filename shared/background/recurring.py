"""Recurring background work that only machine 0 runs (as matrix-media-repo's task scheduler).

`recurring_on_machine_zero` turns "do this every N seconds" into a `make_app` start hook: on
machine 0, when enabled, it runs once at start and then every interval; elsewhere it does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from shared.background.stopping import Stop, stopper
from shared.runtime import Runtime

log = logging.getLogger(__name__)

Job = Callable[[Runtime], Awaitable[object]]


async def _run_forever(rt: Runtime, name: str, job: Job, interval_seconds: float) -> None:
    while True:
        try:
            await job(rt)
        except Exception:
            # A failed round (database restarting) must not end the task: the next one retries.
            log.exception("background task %s failed", name)
        await asyncio.sleep(interval_seconds)


async def start_recurring(
    rt: Runtime, name: str, job: Job, interval_seconds: float, enabled: bool = True
) -> Stop | None:
    """Start `job` every `interval_seconds` on machine 0; return the coroutine that stops it."""
    if not rt.runs_background_tasks or not enabled:
        return None
    return stopper(asyncio.create_task(_run_forever(rt, name, job, interval_seconds), name=name))
