"""Async-upload IDs that expired unused are removed by machine 0, and only by it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from services.admin.recurring.reservation_purge import (
    RESERVATION_TASK,
    purge_expired_reservations,
    start_reservation_purge,
)
from shared.config import parse_config
from shared.db.repositories.reservations import Reservation, get_reservation, insert_reservation
from shared.db.repositories.tasks import list_tasks
from shared.runtime import Runtime
from shared.tasks.runner import TaskRunner
from tests.conftest import cluster_raw_config, embedded_raw_config, new_bucket
from tests.infra.seaweedfs import S3Server


async def reserve(rt: Runtime, media_id: str, expires_ts: int) -> None:
    async with rt.sessions() as session:
        await insert_reservation(session, Reservation("localhost", media_id, "@u:localhost",
                                                      expires_ts - 1000, expires_ts))
        await session.commit()


async def exists(rt: Runtime, media_id: str) -> bool:
    async with rt.sessions() as session:
        return await get_reservation(session, "localhost", media_id) is not None


async def test_only_expired_reservations_are_removed(tmp_path: Path, runtime_for: Any) -> None:
    rt = await runtime_for(parse_config(embedded_raw_config(tmp_path)), machine_id=0)
    now = int(time.time() * 1000)
    await reserve(rt, "expired", now - 1)
    await reserve(rt, "live", now + 60_000)
    assert await purge_expired_reservations(rt, now) == 1
    assert not await exists(rt, "expired")
    assert await exists(rt, "live")


async def test_machine_zero_purges_and_other_machines_never(
    tmp_path: Path, runtime_for: Any, fresh_pg: str, redis_url: str, s3_server: S3Server
) -> None:
    config = parse_config(cluster_raw_config(tmp_path, fresh_pg, redis_url, s3_server,
                                             new_bucket(s3_server)))
    machine_zero = await runtime_for(config, machine_id=0)
    other = await runtime_for(config, machine_id=3)
    media_id = f"gone{time.time_ns()}"
    await reserve(machine_zero, media_id, int(time.time() * 1000) - 1)

    assert await start_reservation_purge(other) is None
    stop = await start_reservation_purge(machine_zero, interval_seconds=3600)
    assert stop is not None
    runner = TaskRunner(machine_zero, poll_seconds=30)  # each round runs as a task
    runner.start()
    try:
        for _ in range(100):
            if not await exists(machine_zero, media_id):
                break
            await asyncio.sleep(0.02)
        assert not await exists(machine_zero, media_id)
        for _ in range(100):  # the round reports as a task, with what it removed
            async with machine_zero.sessions() as session:
                rounds = [t for t in await list_tasks(session, include_finished=True)
                          if t.name == RESERVATION_TASK and t.is_finished]
            if rounds:
                break
            await asyncio.sleep(0.02)
        assert rounds and rounds[0].error is None and rounds[0].result == {"total_removed": 1}
    finally:
        await stop()
        await runner.stop()
