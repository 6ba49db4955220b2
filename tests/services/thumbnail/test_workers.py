"""The worker pool with real processes: limits hold, and a lost worker costs one job only."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from services.thumbnail.worker.pool import (
    WorkerCrashed,
    WorkerJobError,
    WorkerLimits,
    WorkerLost,
    WorkerOutOfMemory,
    WorkerOverCpu,
    WorkerPool,
    WorkerTimedOut,
)
from tests.services.thumbnail import worker_jobs as jobs


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    made = WorkerPool(2, WorkerLimits(timeout_seconds=5, memory_bytes=512 * 1024 * 1024,
                                      cpu_seconds=1))
    yield made
    await made.close()


async def test_jobs_run_in_other_processes_that_are_reused(pool: WorkerPool) -> None:
    assert await pool.run(jobs.echo, {"a": [1, 2]}) == {"a": [1, 2]}
    first = await pool.run(jobs.pid)
    assert first != os.getpid()
    assert await pool.run(jobs.pid) == first
    assert pool.peak_rss_bytes > 0


async def test_start_brings_up_every_worker_ahead_of_the_first_job(pool: WorkerPool) -> None:
    await pool.start()
    started = sorted(pool.pids)
    assert len(started) == 2 and pool.jobs_run == 0
    assert await pool.run(jobs.pid) in started
    assert sorted(pool.pids) == started and pool.jobs_run == 1


async def test_at_most_size_jobs_run_at_once(pool: WorkerPool) -> None:
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(pool.run(jobs.sleep, 0.3) for _ in range(4)))
    assert results == ["woke"] * 4
    assert asyncio.get_running_loop().time() - started >= 0.6  # two rounds of two
    assert len(pool.pids) == 2


async def test_a_job_exception_comes_back_and_the_worker_lives(pool: WorkerPool) -> None:
    worker = await pool.run(jobs.pid)
    with pytest.raises(ValueError, match="bad input"):
        await pool.run(jobs.fail, "bad input")
    with pytest.raises(WorkerJobError):
        await pool.run(jobs.unpicklable_failure)
    assert await pool.run(jobs.pid) == worker


async def test_a_crashing_worker_fails_its_job_and_is_replaced(pool: WorkerPool) -> None:
    with pytest.raises(WorkerCrashed, match="SIGSEGV"):
        await pool.run(jobs.crash)
    assert await pool.run(jobs.echo, "next") == "next"
    assert pool.workers_lost == 1


async def test_a_worker_killed_from_outside_is_lost_not_crashed(pool: WorkerPool) -> None:
    """SIGKILL says nothing about the input (OOM killer, operator): WorkerLost, retried above."""
    with pytest.raises(WorkerLost, match="SIGKILL"):
        await pool.run(jobs.killed)
    assert await pool.run(jobs.echo, 1) == 1


async def test_a_job_past_its_timeout_is_killed(pool: WorkerPool) -> None:
    quick = WorkerPool(1, WorkerLimits(timeout_seconds=3, memory_bytes=0, cpu_seconds=10))
    try:
        victim = await quick.run(jobs.pid)
        with pytest.raises(WorkerTimedOut):
            await quick.run(jobs.sleep, 60)
        assert await quick.run(jobs.pid) != victim
    finally:
        await quick.close()


async def test_cpu_time_is_limited_per_job() -> None:
    # Each job may use one CPU second, however many the worker used before. The wall-clock
    # timeout leaves room for a loaded machine, where one CPU second can take many seconds.
    pool = WorkerPool(1, WorkerLimits(timeout_seconds=60, memory_bytes=0, cpu_seconds=1))
    try:
        for _ in range(3):
            assert await pool.run(jobs.spin, 0.4) > 0
        with pytest.raises(WorkerOverCpu):
            await pool.run(jobs.spin, 3)
        assert await pool.run(jobs.echo, "alive") == "alive"
    finally:
        await pool.close()


async def test_memory_is_limited(pool: WorkerPool) -> None:
    assert await pool.run(jobs.allocate, 64) == 64 * 1024 * 1024
    with pytest.raises(WorkerOutOfMemory):
        await pool.run(jobs.allocate, 1024)
    assert await pool.run(jobs.allocate, 64) == 64 * 1024 * 1024


async def test_a_worker_killed_while_idle_is_replaced_before_the_next_job(pool: WorkerPool) -> None:
    victim = await pool.run(jobs.pid)
    os.kill(victim, signal.SIGKILL)
    await asyncio.sleep(0.1)
    assert await pool.run(jobs.pid) != victim


async def test_a_cancelled_caller_does_not_leave_a_busy_worker_behind(pool: WorkerPool) -> None:
    task = asyncio.create_task(pool.run(jobs.sleep, 10))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pool.run(jobs.echo, "free") == "free"


async def test_close_stops_every_worker() -> None:
    pool = WorkerPool(2, WorkerLimits(timeout_seconds=5, memory_bytes=0))
    await asyncio.gather(pool.run(jobs.sleep, 0.1), pool.run(jobs.sleep, 0.1))
    pids = pool.pids
    await pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
