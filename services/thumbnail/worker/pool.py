"""A pool of worker processes that run image jobs under CPU-time, memory and wall-clock limits.

Decoders are native code fed hostile input. Each job runs in a separate process whose address
space is capped (`RLIMIT_AS`) and whose CPU time is capped per job (`RLIMIT_CPU`, raised before
each job by that job's budget), and the service kills it when a job overruns its timeout. A
worker that crashes, is killed or runs out of memory costs that one job a clear error; the pool
starts a replacement on the next job and the service never notices.

Workers are forked from a forkserver that has already imported the decoders, so a replacement is
ready in milliseconds and shares the libraries' pages with its siblings. `start` starts the
forkserver and every worker ahead of the first job (services call it at start); without it
they start on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import pickle
import resource
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
Job = Callable[..., Any]
"""A module-level function: sent to the worker by reference (its module and name), not by value."""

JOBS_PER_WORKER = 1000
"""A worker is replaced after this many jobs, bounding what a slow leak in a decoder can cost."""
JOIN_SECONDS = 5.0
M_ARENA_MAX = -8  # glibc's mallopt parameter number


class WorkerFailure(Exception):
    """A job could not finish in its worker. The message is safe to show to a client."""


class WorkerCrashed(WorkerFailure):
    """The worker died mid-job: a decoder crash, the CPU-time limit, or a kill from outside."""


class WorkerLost(WorkerFailure):
    """The worker was killed from outside (SIGKILL: the OOM killer, an operator), or exited,
    while running a job: nothing says the input was at fault, so it is worth another try."""


class WorkerOverCpu(WorkerCrashed):
    """The job used up its CPU-time budget (the kernel stopped the worker with SIGXCPU)."""


class WorkerTimedOut(WorkerFailure):
    """The job ran past its timeout and its worker was killed."""


class WorkerOutOfMemory(WorkerFailure):
    """The job needed more memory than a worker may have."""


class WorkerJobError(WorkerFailure):
    """The job raised an exception that could not be sent back as it was."""


@dataclass(frozen=True)
class WorkerLimits:
    timeout_seconds: float
    memory_bytes: int  # 0: no address-space limit
    cpu_seconds: int = 0  # 0: the timeout, rounded up

    @property
    def cpu_budget(self) -> int:
        return self.cpu_seconds or max(1, math.ceil(self.timeout_seconds))


# --- inside the worker process --------------------------------------------------------------


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _allow_cpu_seconds(budget: int) -> None:
    """Let the next job use `budget` more CPU seconds; past that the kernel sends SIGXCPU."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = math.ceil(usage.ru_utime + usage.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (used + budget, hard))


def _sendable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return WorkerJobError(f"The job failed: {type(exc).__name__}")


def _run_one(job: Job, args: tuple[Any, ...]) -> tuple[str, Any, int]:
    try:
        return "ok", job(*args), _peak_rss_bytes()
    except MemoryError:
        return "oom", None, _peak_rss_bytes()
    except Exception as exc:
        return "error", _sendable(exc), _peak_rss_bytes()


def _few_malloc_arenas() -> None:
    """glibc reserves 64 MiB of address space per thread arena; decoders that start threads
    would spend the address-space limit on reservations instead of pixels."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)


def worker_ready() -> int:
    """The job `WorkerPool.start` sends each new worker: it only proves the worker is up."""
    return os.getpid()


def worker_main(conn: Connection, memory_bytes: int) -> None:
    """Serve jobs from `conn` until it closes. Runs in the worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the service, which stops us
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashing decoder leaves no core file
    if memory_bytes > 0:
        _few_malloc_arenas()
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            job, args, cpu_budget = conn.recv()
        except (EOFError, OSError):
            return
        _allow_cpu_seconds(cpu_budget)
        status, payload, peak = _run_one(job, args)
        conn.send((status, payload, peak))
        if status == "oom":
            return  # the heap may be fragmented beyond use; the pool starts a fresh worker


# --- in the service ---------------------------------------------------------------------------


@dataclass(eq=False)  # identity semantics: workers live in a set
class _Worker:
    process: BaseProcess
    conn: Connection
    jobs: int = 0


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"exit status {exitcode}"
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


class WorkerPool:
    """At most `size` worker processes; `run` sends a job to an idle one (or waits for one)."""

    def __init__(self, size: int, limits: WorkerLimits, preload: Sequence[str] = ()) -> None:
        self.size = size
        self.limits = limits
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._reapers: set[asyncio.Task[None]] = set()
        self._closed = False
        self.jobs_run = 0
        self.jobs_waiting = 0  # for a free slot: the pool's queue (a metric)
        self.workers_lost = 0
        self.peak_rss_bytes = 0

    async def start(self) -> None:
        """Start the forkserver (importing the preloaded modules) and all `size` workers now,
        each proven up by a job, so that the first real job waits for neither."""
        await asyncio.gather(*(self._run(worker_ready, (), counted=False) for _ in range(self.size)))

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    @property
    def busy_pids(self) -> list[int]:
        """Workers taken for a job (sent it, or about to): a kill of one of these costs a job,
        while an idle one killed is only replaced by the next `run`."""
        idle = set(self._idle)
        return [w.process.pid for w in list(self._workers)
                if w not in idle and w.process.pid is not None]

    async def run(self, job: Callable[..., T], *args: Any) -> T:
        """Run `job(*args)` in a worker and return its result (or raise its error).

        Raises `WorkerCrashed`, `WorkerTimedOut` or `WorkerOutOfMemory` when the worker did not
        survive the job; the exception a job raises is re-raised here as it was.
        """
        result: T = await self._run(job, args, counted=True)
        return result

    async def _run(self, job: Job, args: tuple[Any, ...], counted: bool) -> Any:
        """`run`; a job not `counted` (a start-up check) is left out of `jobs_run` and out of
        the worker's job count."""
        self.jobs_waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.jobs_waiting -= 1
        try:
            if self._closed:
                raise RuntimeError("the worker pool is closed")
            worker = await self._take()
            try:
                status, payload, peak = await self._exchange(worker, job, args)
            except BaseException:
                self._retire(worker)
                raise
            return self._settle(worker, status, payload, peak, counted)
        finally:
            self._slots.release()

    def _settle(self, worker: _Worker, status: str, payload: Any, peak: int, counted: bool) -> Any:
        if counted:
            self.jobs_run += 1
            worker.jobs += 1
        self.peak_rss_bytes = max(self.peak_rss_bytes, peak)
        if status == "oom" or worker.jobs >= JOBS_PER_WORKER:
            self._retire(worker, lost=status == "oom")
        else:
            self._idle.append(worker)
        if status == "oom":
            raise WorkerOutOfMemory("The media needs more memory than thumbnailing may use")
        if status == "error":
            raise payload
        return payload

    async def _take(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.process.is_alive():
                return worker
            self._retire(worker, lost=True)
        return await asyncio.to_thread(self._start_worker)

    def _start_worker(self) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main, args=(theirs, self.limits.memory_bytes),
            name="mmr-thumbnail-worker", daemon=True,
        )
        process.start()
        theirs.close()  # only the worker holds its end: its death reads as EOF here
        worker = _Worker(process, ours)
        self._workers.add(worker)
        return worker

    async def _exchange(self, worker: _Worker, job: Job, args: tuple[Any, ...]) -> tuple[str, Any, int]:
        try:
            worker.conn.send((job, args, self.limits.cpu_budget))
            await self._readable(worker.conn, self.limits.timeout_seconds)
            result: tuple[str, Any, int] = worker.conn.recv()
            return result
        except TimeoutError:
            raise WorkerTimedOut(
                f"Thumbnailing took longer than {self.limits.timeout_seconds:g} seconds"
            ) from None
        except (EOFError, OSError):
            await asyncio.to_thread(worker.process.join, JOIN_SECONDS)
            exitcode = worker.process.exitcode
            cause = _describe_exit(exitcode)
            log.warning("thumbnail worker %s died during a job: %s", worker.process.pid, cause)
            if exitcode == -signal.SIGXCPU:
                raise WorkerOverCpu("Thumbnailing the media needs more CPU time than allowed") from None
            if exitcode is None or exitcode >= 0 or exitcode == -signal.SIGKILL:
                raise WorkerLost(f"The thumbnail worker was lost: {cause}") from None
            raise WorkerCrashed(f"The thumbnail worker stopped: {cause}") from None

    @staticmethod
    async def _readable(conn: Connection, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(conn.fileno(), wake)
        try:
            await asyncio.wait_for(ready, timeout)
        finally:
            loop.remove_reader(conn.fileno())

    def _retire(self, worker: _Worker, lost: bool = True) -> None:
        """Kill (if still running) and forget a worker; reaping happens off the event loop."""
        self._workers.discard(worker)
        if lost:
            self.workers_lost += 1
        if worker.process.is_alive():
            worker.process.kill()
        worker.conn.close()
        reaper = asyncio.get_running_loop().create_task(
            asyncio.to_thread(worker.process.join, JOIN_SECONDS)
        )
        self._reapers.add(reaper)
        reaper.add_done_callback(self._reapers.discard)

    async def close(self) -> None:
        """Stop every worker, busy or idle."""
        self._closed = True
        self._idle.clear()
        for worker in list(self._workers):
            self._retire(worker, lost=False)
        await asyncio.gather(*self._reapers, return_exceptions=True)
