"""Recurring background work that only machine 0 runs (as matrix-media-repo's task scheduler).

`recurring_on_machine_zero` turns "do this every N seconds" into a `make_app` start hook: on
machine 0, when enabled, it runs once at start and then every interval; elsewhere it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from shared.cluster.leadership import while_machine_zero
from shared.ids.machine_id import BACKGROUND_MACHINE_ID
from shared.runtime import Runtime

log = logging.getLogger(__name__)

Job = Callable[[Runtime], Awaitable[object]]
Stop = Callable[[], Awaitable[None]]


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
    """Start `job` every `interval_seconds` on machine 0 while it holds its lease (a standby
    starts it when it takes over, a machine 0 that loses the lease stops it); return the
    coroutine that stops it."""
    if rt.machine_id != BACKGROUND_MACHINE_ID or not enabled:
        return None
    def forever() -> Coroutine[Any, Any, None]:
        return _run_forever(rt, name, job, interval_seconds)

    runner = forever() if rt.presence is None else while_machine_zero(rt.presence, name, forever)
    task = asyncio.create_task(runner, name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
