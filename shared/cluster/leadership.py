"""Running work only while this process is machine 0 holding its lease.

`while_machine_zero(presence, name, start)` runs `start()` each time the lease is taken and
cancels it as soon as the lease is lost (a lapse, or a takeover after this process was paused),
so a standby that becomes machine 0 starts the work and a machine 0 that stands down stops it:
never two processes running it at once. Work must be safe to cancel at any await and to resume
elsewhere (background tasks record their progress in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from shared.cluster.presence import ClusterPresence

log = logging.getLogger(__name__)


async def while_machine_zero(
    presence: ClusterPresence, name: str, start: Callable[[], Coroutine[Any, Any, object]]
) -> None:
    """Forever: wait for the lease, run `start()` until it ends or the lease is lost."""
    lease = presence.lease
    while True:
        await lease.wait_held()
        log.info("machine 0 lease held: starting %s", name)
        work = asyncio.create_task(start(), name=name)
        lost = asyncio.create_task(lease.wait_lost())
        try:
            await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, lost):
                task.cancel()
            for task in (work, lost):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if work.done() and not work.cancelled() and not lost.done():
            return  # the work finished by itself while we held the lease
        log.warning("machine 0 lease lost: stopped %s", name)
