"""Tasks: created anywhere, run by machine 0 only, resumed from their last checkpoint after an
interruption, their progress, result or error recorded."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from shared.config import MmrConfig, parse_config
from shared.db.models import BackgroundTaskRow
from shared.db.repositories.tasks import TaskRecord, get_task
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, UnknownTask, task
from shared.tasks.runner import TaskRunner
from shared.tasks.schedule import create_task, wait_for_task
from tests.conftest import cluster_raw_config, embedded_raw_config, new_bucket
from tests.infra.postgres import temporary_database
from tests.infra.seaweedfs import S3Server

STEPS_DONE: list[tuple[int, int]] = []
GATE: dict[int, asyncio.Event] = {}


@task("test_counting")
async def counting_task(ctx: TaskContext) -> dict[str, Any]:
    """Does steps 0..n-1 once each, checkpointing after each; may wait at a gate step."""
    n = int(ctx.params["steps"])
    start = int((ctx.state or {}).get("next", 0))
    for step in range(start, n):
        if ctx.params.get("gate_at") == step and ctx.task_id in GATE:
            await GATE[ctx.task_id].wait()
        STEPS_DONE.append((ctx.task_id, step))
        await ctx.checkpoint({"next": step + 1}, done=step + 1, total=n)
    return {"steps": n}


@task("test_failing")
async def failing_task(ctx: TaskContext) -> None:
    raise ValueError("the disk is on fire")


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    STEPS_DONE.clear()  # task ids restart at 1 in each test's database


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with temporary_database("mmr_tasks") as url:
        yield url


@pytest.fixture(params=["embedded", "cluster"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> MmrConfig:
    if request.param == "embedded":
        return parse_config(embedded_raw_config(tmp_path))
    s3: S3Server = request.getfixturevalue("s3_server")
    return parse_config(cluster_raw_config(tmp_path, request.getfixturevalue("fresh_pg"),
                                           request.getfixturevalue("redis_url"), s3, new_bucket(s3)))


async def test_a_task_runs_on_machine_zero_with_progress_and_result(
    config: MmrConfig, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(config, machine_id=0)
    runner = TaskRunner(rt, poll_seconds=30)
    runner.start()
    try:
        record = await create_task(rt, "test_counting", {"steps": 3}, created_by="@admin:localhost")
        finished = await wait_for_task(rt, record.id, 10)
    finally:
        await runner.stop()
    assert finished is not None and finished.is_finished
    assert finished.error is None
    assert finished.result == {"steps": 3}
    assert (finished.done, finished.total) == (3, 3)
    assert [s for t, s in STEPS_DONE if t == record.id] == [0, 1, 2]


async def test_a_failed_task_records_its_error(config: MmrConfig, runtime_for: Any) -> None:
    rt: Runtime = await runtime_for(config, machine_id=0)
    runner = TaskRunner(rt, poll_seconds=30)
    runner.start()
    try:
        record = await create_task(rt, "test_failing", {})
        finished = await wait_for_task(rt, record.id, 10)
    finally:
        await runner.stop()
    assert finished is not None and finished.is_finished
    assert finished.error == "ValueError: the disk is on fire"


async def test_an_unknown_task_name_is_refused_before_anything_is_recorded(
    config: MmrConfig, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(config, machine_id=0)
    with pytest.raises(UnknownTask):
        await create_task(rt, "no_such_task", {})


async def test_other_machines_create_tasks_but_never_run_them(
    config: MmrConfig, runtime_for: Any
) -> None:
    machine_zero: Runtime = await runtime_for(config, machine_id=0)  # migrates; runs no runner yet
    other: Runtime = await runtime_for(config, machine_id=7)
    idle = TaskRunner(other, poll_seconds=0.05)
    idle.start()
    try:
        record = await create_task(other, "test_counting", {"steps": 1})
        await asyncio.sleep(0.5)
        async with other.sessions() as session:
            still = await get_task(session, record.id)
        assert still is not None and not still.is_finished and still.attempts == 0
    finally:
        await idle.stop()
    runner = TaskRunner(machine_zero, poll_seconds=30)
    runner.start()  # a task scheduled while machine 0 was away runs when it starts
    try:
        finished = await wait_for_task(machine_zero, record.id, 10)
    finally:
        await runner.stop()
    assert finished is not None and finished.is_finished and finished.result == {"steps": 1}


async def resumed(rt: Runtime, task_id: int) -> TaskRecord:
    """The task once a fresh runner (a restarted machine 0) has finished it without error."""
    runner = TaskRunner(rt, poll_seconds=30)
    runner.start()
    try:
        finished = await wait_for_task(rt, task_id, 10)
    finally:
        await runner.stop()
    assert finished is not None and finished.is_finished and finished.error is None
    return finished


async def test_an_interrupted_task_resumes_from_its_checkpoint_doing_each_step_once(
    config: MmrConfig, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(config, machine_id=0)
    first = TaskRunner(rt, poll_seconds=30)
    record = await create_task(rt, "test_counting", {"steps": 5, "gate_at": 3})
    GATE[record.id] = asyncio.Event()  # step 3 waits: the runner is stopped there
    first.start()
    for _ in range(200):
        async with rt.sessions() as session:
            current = await get_task(session, record.id)
        if current is not None and current.done == 3:
            break
        await asyncio.sleep(0.02)
    await first.stop()
    del GATE[record.id]
    finished = await resumed(rt, record.id)
    assert [s for t, s in STEPS_DONE if t == record.id] == [0, 1, 2, 3, 4]
    assert finished.attempts == 2


async def test_a_task_created_on_another_process_wakes_machine_zero_at_once(
    tmp_path: Path, fresh_pg: str, redis_url: str, s3_server: S3Server, runtime_for: Any
) -> None:
    config = parse_config(cluster_raw_config(tmp_path, fresh_pg, redis_url, s3_server,
                                             new_bucket(s3_server)))
    machine_zero: Runtime = await runtime_for(config, machine_id=0)
    other: Runtime = await runtime_for(config, machine_id=3)
    runner = TaskRunner(machine_zero, poll_seconds=60)  # polling alone would take a minute
    runner.start()
    try:
        await asyncio.sleep(0.3)  # subscribed
        record = await create_task(other, "test_counting", {"steps": 2})
        finished = await wait_for_task(other, record.id, 10)
    finally:
        await runner.stop()
    assert finished is not None and finished.is_finished


async def test_a_process_that_loses_the_right_to_run_tasks_stops_at_its_next_checkpoint(
    tmp_path: Path, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(parse_config(embedded_raw_config(tmp_path)), machine_id=0)
    runner = TaskRunner(rt, poll_seconds=30)
    record = await create_task(rt, "test_counting", {"steps": 4, "gate_at": 2})
    GATE[record.id] = asyncio.Event()
    runner.start()
    try:
        for _ in range(200):
            async with rt.sessions() as session:
                current = await get_task(session, record.id)
            if current is not None and current.done == 2:
                break
            await asyncio.sleep(0.02)
        rt.machine_id = 1  # as a lapsed lease would make `runs_background_tasks` false
        GATE[record.id].set()
        for _ in range(100):
            if record.id not in runner.running_ids:
                break
            await asyncio.sleep(0.02)
        async with rt.sessions() as session:
            after = await get_task(session, record.id)
        assert after is not None and not after.is_finished and after.done == 2
        assert [s for t, s in STEPS_DONE if t == record.id] == [0, 1, 2]  # step 2 redone on resume
    finally:
        rt.machine_id = 0
        await runner.stop()


async def test_a_task_interrupted_a_week_ago_still_resumes(config: MmrConfig, runtime_for: Any) -> None:
    # matrix-media-repo forgets unfinished tasks older than an hour; ours resumes them all.
    rt: Runtime = await runtime_for(config, machine_id=0)
    record = await create_task(rt, "test_counting", {"steps": 4})
    week_ago = int(time.time() * 1000) - 7 * 86_400_000
    async with rt.sessions() as session:
        await session.execute(update(BackgroundTaskRow).where(BackgroundTaskRow.id == record.id)
                              .values(start_ts=week_ago, state=json.dumps({"next": 2}), done=2,
                                      total=4, attempts=1))
        await session.commit()
    finished = await resumed(rt, record.id)
    assert [s for t, s in STEPS_DONE if t == record.id] == [2, 3], "resumed at its checkpoint"
    assert (finished.done, finished.attempts, finished.start_ts) == (4, 2, week_ago)
