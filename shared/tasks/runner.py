"""Machine 0's task runner: runs what any process scheduled, resumes what a crash interrupted.

It wakes on the coordinator's task channel (Redis in a cluster, in-process in the embedded
default) and also polls the table every `poll_seconds`, so a task whose announcement was lost
still runs. At start it resumes every unfinished task, however old. Whether this process may run
tasks is asked of `Runtime.runs_background_tasks` on every round, so that a process which gains
or loses that right (a lease) starts or stops running them without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shared.cluster.leadership import while_machine_zero
from shared.coordination.base import CoordinatorUnavailable, Subscription
from shared.db.repositories.tasks import (
    TaskRecord,
    finish_task,
    list_tasks,
    note_attempt,
    save_checkpoint,
)
from shared.metrics.record import task_finished
from shared.metrics.state import TaskProgress
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, TaskFunction, UnknownTask, lookup
from shared.tasks.schedule import CHANNEL, now_ms

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
MAX_CONCURRENT = 4


class TaskRightLost(Exception):
    """Raised at a checkpoint once `Runtime.runs_background_tasks` turned false."""


class TaskRunner:
    def __init__(self, rt: Runtime, poll_seconds: float = POLL_SECONDS,
                 max_concurrent: int = MAX_CONCURRENT) -> None:
        self.rt = rt
        self.poll_seconds = poll_seconds
        self._slots = asyncio.Semaphore(max_concurrent)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def running_ids(self) -> frozenset[int]:
        """Ids of the tasks this process is running now."""
        return frozenset(self._running)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="task-runner")

    async def stop(self) -> None:
        """Cancel the loop and every running task; they stay unfinished and resume next start."""
        tasks = [t for t in (self._loop_task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _subscribe(self) -> Subscription | None:
        try:
            return await self.rt.coordinator.subscribe(CHANNEL)
        except CoordinatorUnavailable as exc:
            log.warning("task channel unavailable, polling every %.0fs: %r", self.poll_seconds, exc)
            return None

    async def _loop(self) -> None:
        subscription: Subscription | None = None
        try:
            while True:
                if subscription is None:
                    subscription = await self._subscribe()
                try:
                    await self.run_pending()
                except Exception:
                    # The database restarting must not end the runner: the next round retries.
                    log.exception("task runner round failed")
                await self._wait(subscription)
        finally:
            if subscription is not None:
                await subscription.close()

    async def _wait(self, subscription: Subscription | None) -> None:
        if subscription is None:
            await asyncio.sleep(self.poll_seconds)
            return
        try:
            await subscription.get(self.poll_seconds)
        except CoordinatorUnavailable:
            await asyncio.sleep(self.poll_seconds)

    async def run_pending(self) -> None:
        """Start every unfinished task not running yet (or stop all when no longer allowed)."""
        if not self.rt.runs_background_tasks:
            for task in list(self._running.values()):
                task.cancel()
            return
        async with self.rt.sessions() as session:
            pending = await list_tasks(session, include_finished=False)
        for record in pending:
            if record.id not in self._running:
                self._running[record.id] = asyncio.create_task(
                    self._guarded(record), name=f"task-{record.id}-{record.name}")

    async def _guarded(self, record: TaskRecord) -> None:
        try:
            async with self._slots:
                await self._run(record)
        finally:
            self._running.pop(record.id, None)

    async def _run(self, record: TaskRecord) -> None:
        rt = self.rt
        try:
            function = lookup(record.name)
        except UnknownTask:
            await self._finish(record.id, None, f"unknown task {record.name!r}")
            return
        async with rt.sessions() as session:
            await note_attempt(session, record.id)
            await session.commit()

        async def checkpoint(state: dict[str, Any], done: int, total: int | None) -> None:
            if not rt.runs_background_tasks:
                # This process lost the right (its lease) while the task ran: stop before writing
                # over what the process that holds it now saves.
                raise TaskRightLost(record.id)
            async with rt.sessions() as session:
                await save_checkpoint(session, record.id, state, done, total)
                await session.commit()
            progress.done, progress.total = done, total

        context = TaskContext(record.id, record.name, record.params, record.state, rt, checkpoint)
        progress = rt.activity.tasks[record.id] = TaskProgress(record.name, record.done,
                                                                 record.total)
        try:
            await self._run_function(record, function, context)
        finally:
            rt.activity.tasks.pop(record.id, None)

    async def _run_function(self, record: TaskRecord, function: TaskFunction,
                            context: TaskContext) -> None:
        log.info("task %d (%s) %s", record.id, record.name,
                 "resumed" if record.state is not None else "started")
        try:
            result = await function(context)
        except asyncio.CancelledError:
            log.info("task %d (%s) interrupted; it resumes from its last checkpoint",
                     record.id, record.name)
            raise
        except TaskRightLost:
            log.warning("task %d (%s) stopped: this process may no longer run tasks",
                        record.id, record.name)
            return
        except Exception as exc:
            log.exception("task %d (%s) failed", record.id, record.name)
            await self._finish(record.id, None, f"{type(exc).__name__}: {exc}" if str(exc)
                               else type(exc).__name__)
            task_finished(self.rt, record.name, failed=True)
            return
        await self._finish(record.id, result, None)
        task_finished(self.rt, record.name, failed=False)
        log.info("task %d (%s) finished", record.id, record.name)

    async def _finish(self, task_id: int, result: dict[str, Any] | None, error: str | None) -> None:
        async with self.rt.sessions() as session:
            await finish_task(session, task_id, now_ms(), result, error)
            await session.commit()


async def _run_until_cancelled(runner: TaskRunner) -> None:
    runner.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.stop()


async def start_task_runner(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """`make_app` start hook of the admin service: the runner, idle unless this process may run
    tasks (`Runtime.runs_background_tasks`); returns its stop.

    On machine 0 it runs only while the machine-0 lease is held: started when a standby takes
    over (resuming every unfinished task), cancelled the moment the lease is lost, rather than
    at the runner's next poll, so two processes never run tasks at once.
    """
    runner = TaskRunner(rt)
    if rt.presence is None or rt.machine_id != 0:
        runner.start()
        return runner.stop
    supervisor = asyncio.create_task(
        while_machine_zero(rt.presence, "task runner", lambda: _run_until_cancelled(runner)))

    async def stop() -> None:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor

    return stop
