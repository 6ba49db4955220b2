"""Machine 0 dying in the middle of a background task: the standby takes the lease, resumes the
task from its last checkpoint and finishes it exactly once, and the two never run it at once.

The two machine 0s are two runtimes in this process on one PostgreSQL and Redis (leases are per
runtime, as they are per process); "killing" the holder stops its heartbeat and its runner at
once without giving the lease back, as SIGKILL would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from shared.config import parse_config
from shared.runtime import Runtime, build_runtime
from shared.tasks.registry import TaskContext, task
from shared.tasks.runner import POLL_SECONDS, start_task_runner
from shared.tasks.schedule import create_task, wait_for_task
from tests.conftest import cluster_raw_config, new_bucket
from tests.infra.seaweedfs import S3Server

STEPS = 12
LEASE_SECONDS = 3
STEP_SECONDS = 0.25
# (runtime tag, step, started, ended)
RUNS: list[tuple[str, int, float, float]] = []


@task("cluster_test_steps")
async def steps_task(ctx: TaskContext) -> dict[str, Any]:
    presence = ctx.runtime.presence
    tag = "a" if presence is not None and presence.info.service == "admin-a" else "b"
    for step in range(int((ctx.state or {}).get("next", 0)), STEPS):
        began = time.monotonic()
        await asyncio.sleep(STEP_SECONDS)
        RUNS.append((tag, step, began, time.monotonic()))
        await ctx.checkpoint({"next": step + 1}, done=step + 1, total=STEPS)
    return {"steps": STEPS}


async def test_the_standby_finishes_the_holders_task_exactly_once(
    tmp_path: Path, database: str, redis_url: str, s3_server: S3Server
) -> None:
    raw = cluster_raw_config(tmp_path, database, redis_url, s3_server, new_bucket(s3_server))
    raw["cluster"] = {"leaseSeconds": LEASE_SECONDS}
    config = parse_config(raw)
    holder = await build_runtime(config, "admin-a", 0)
    standby = await build_runtime(config, "admin-b", 0)
    assert holder.runs_background_tasks and not standby.runs_background_tasks
    stop_standby = await start_task_runner(standby)
    stop_holder = await start_task_runner(holder)
    try:
        record = await create_task(holder, "cluster_test_steps", {})
        while len(RUNS) < 4:
            await asyncio.sleep(0.05)
        killed_at = time.monotonic()
        await _kill(holder, stop_holder)
        # Generous: on a loaded machine (other xdist workers, other suites) the standby's
        # heartbeat and runner rounds are late; the bound on the takeover is asserted below.
        finished = await wait_for_task(standby, record.id, 120)
        assert finished is not None, "the standby never finished the task"
        took_over_at = min(began for tag, _, began, _ in RUNS if tag == "b")
    finally:
        await stop_standby()
        await holder.close()
        await standby.close()
    assert finished is not None and finished.is_finished and finished.error is None
    assert finished.result == {"steps": STEPS}
    # Within a lease, a heartbeat (a third of it) and a runner round: nothing wakes the
    # standby's runner when it gains the lease, it looks on its next poll.
    assert took_over_at - killed_at <= LEASE_SECONDS * 4 / 3 + POLL_SECONDS + 1
    done = sorted(step for _, step, _, _ in RUNS)
    assert set(done) == set(range(STEPS))
    assert len(done) - len(set(done)) <= 1  # at most the step the kill interrupted runs twice
    a_end = max(end for tag, _, _, end in RUNS if tag == "a")
    assert a_end <= took_over_at  # never both at once


async def _kill(rt: Runtime, stop_runner: Any) -> None:
    """Everything of `rt` stops now and its lease is left to expire (no release)."""
    assert rt.presence is not None
    heartbeat = rt.presence._task
    assert heartbeat is not None
    heartbeat.cancel()
    rt.presence.lease._valid_until = 0.0  # a dead process mints and runs nothing
    rt.presence.lease._check_expired()
    await stop_runner()
    rt.presence.lease.release = _no_release  # type: ignore[method-assign]
    rt.presence.store.remove_member = _no_remove  # type: ignore[method-assign]


async def _no_release() -> None:
    return None


async def _no_remove(member_id: str) -> None:
    return None

