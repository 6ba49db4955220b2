"""Machine 0 removes temp files that killed processes left in the (shared) temp folder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from shared.cluster.leadership import while_machine_zero
from shared.runtime import Runtime
from shared.storage.stale_spools import sweep_stale_spools

log = logging.getLogger(__name__)
SWEEP_SECONDS = 60.0


async def _sweep_forever(rt: Runtime) -> None:
    while True:
        try:
            await asyncio.to_thread(sweep_stale_spools, rt.temp_dir)
        except OSError:
            log.exception("could not sweep %s", rt.temp_dir)
        await asyncio.sleep(SWEEP_SECONDS)


async def start_spool_sweep(rt: Runtime) -> Callable[[], Awaitable[None]] | None:
    if rt.machine_id != 0 or rt.presence is None:
        return None
    task = asyncio.create_task(while_machine_zero(rt.presence, "temp file sweep",
                                                  lambda: _sweep_forever(rt)))

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
