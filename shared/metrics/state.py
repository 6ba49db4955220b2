"""Gauges of what a process holds right now: its machine-ID lease, its running tasks, its queues.

One collector, registered once per process, reads every watched `ProcessActivity` at each
scrape (a test process holds several apps), so these values are never stale and cost nothing
between scrapes. What takes I/O to know (rows in the database, a Redis stream's backlog) is one
number for the whole cluster: machine 0 samples it every `SAMPLE_SECONDS` (`sample_cluster`),
and only machine 0 exports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.metrics.definitions import IDS

if TYPE_CHECKING:
    from shared.cluster.presence import ClusterPresence
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0
LEASE_ROLES = ("holder", "standby", "lapsed")


@dataclass
class TaskProgress:
    """A running task's last checkpoint: `done` of `total` (None: not known yet)."""

    name: str
    done: int = 0
    total: int | None = None


@dataclass
class ProcessActivity:
    """What one process is doing, kept current by the code doing it."""

    service: str
    machine_id: int
    presence: ClusterPresence | None = None
    # task id -> progress, for the tasks this process runs now (shared.tasks.runner).
    tasks: dict[int, TaskProgress] = field(default_factory=dict)
    # queue name -> how to read its depth in this process (no I/O: called at scrape time).
    local_queues: dict[str, Callable[[], int]] = field(default_factory=dict)
    # queue name -> cluster-wide depth, sampled by machine 0.
    cluster_queues: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [self.service, str(self.machine_id)]


_watched: dict[int, ProcessActivity] = {}
_watched_lock = threading.Lock()  # scrapes run on the listener's thread


class _ActivityCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        with _watched_lock:
            watched = list(_watched.values())
        held = GaugeMetricFamily(
            "media_cluster_lease_held",
            "1 while this process holds the lease on its machine ID (the machine_id label), 0 "
            "while it does not (a standby machine 0, or a lease that lapsed).", labels=IDS)
        role = GaugeMetricFamily(
            "media_cluster_lease_role",
            "1 for this process's lease role: holder, standby (machine 0 waiting for the lease) "
            "or lapsed (lost it); 0 for the others.", labels=(*IDS, "role"))
        left = GaugeMetricFamily(
            "media_cluster_lease_seconds_left", "Seconds until the lease expires unless renewed.",
            labels=IDS)
        running = GaugeMetricFamily(
            "media_tasks_running", "Background tasks this process is running, by task name.",
            labels=(*IDS, "task"))
        done = GaugeMetricFamily(
            "media_task_progress_done",
            "Sum of the units done (last checkpoint) of the running tasks, by task name.",
            labels=(*IDS, "task"))
        total = GaugeMetricFamily(
            "media_task_progress_total",
            "Sum of the units to do of the running tasks that know their total, by task name.",
            labels=(*IDS, "task"))
        depth = GaugeMetricFamily(
            "media_queue_depth",
            "Work waiting: thumbnail_workers (jobs waiting for a worker of this process); on "
            "machine 0 for the whole cluster: thumbnail_pregeneration, async_uploads "
            "(reserved IDs without content yet), tasks (unfinished, not running).",
            labels=(*IDS, "queue"))
        # Several apps of one process may share labels (tests run many embedded machine 0s):
        # one series each, lease state by max and counts summed, as Prometheus needs.
        highest: dict[tuple[str, ...], float] = defaultdict(float)
        summed: dict[tuple[str, ...], float] = defaultdict(float)
        for activity in watched:
            ids = tuple(activity.ids)
            if activity.presence is not None:
                lease = activity.presence.lease
                for key, value in ((("held", *ids), 1.0 if lease.holds else 0.0),
                                   (("left", *ids), max(0.0, lease.seconds_left)),
                                   *((("role", *ids, name), 1.0 if lease.role == name else 0.0)
                                     for name in LEASE_ROLES)):
                    highest[key] = max(highest[key], value)
            for progress in list(activity.tasks.values()):
                summed[("running", *ids, progress.name)] += 1
                summed[("done", *ids, progress.name)] += progress.done
                summed[("total", *ids, progress.name)] += progress.total or 0
            for name, read in list(activity.local_queues.items()):
                summed[("depth", *ids, name)] += read()
            for name, value in list(activity.cluster_queues.items()):
                summed[("depth", *ids, name)] += value
        families = {"held": held, "left": left, "role": role, "running": running, "done": done,
                    "total": total, "depth": depth}
        for (family, *labels), value in sorted({**highest, **summed}.items()):
            families[family].add_metric(labels, value)
        yield from (held, role, left, running, done, total, depth)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # values only exist at scrape time; nothing to check at registration


REGISTRY.register(_ActivityCollector())


@asynccontextmanager
async def watched(rt: Runtime) -> AsyncIterator[None]:
    """Export `rt.activity` while the block runs; machine 0 also samples the cluster's queues."""
    activity = rt.activity
    with _watched_lock:
        _watched[id(activity)] = activity
    sampler = asyncio.create_task(_sample_forever(rt), name="metrics-sampler")
    try:
        yield
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        with _watched_lock:
            _watched.pop(id(activity), None)


async def _sample_forever(rt: Runtime) -> None:
    while True:
        try:
            await sample_cluster(rt)
        except Exception as exc:
            # A database or Redis blip: the next round retries; the old values stay.
            log.debug("metrics sample failed: %r", exc)
        await asyncio.sleep(SAMPLE_SECONDS)


async def sample_cluster(rt: Runtime) -> None:
    """Machine 0 (holding its lease) counts what waits in the cluster; others export none."""
    # Imported here: the repositories import the database models, which the metrics
    # definitions (imported by nearly everything) need not load.
    from shared.db.repositories.reservations import count_pending
    from shared.db.repositories.tasks import list_tasks
    from shared.tasks.schedule import now_ms

    queues = rt.activity.cluster_queues
    if not rt.runs_background_tasks:
        queues.clear()
        return
    async with rt.sessions() as session:
        reserved = await count_pending(session, now_ms())
        unfinished = await list_tasks(session, include_finished=False)
    queues["async_uploads"] = reserved
    queues["tasks"] = sum(1 for task in unfinished if task.id not in rt.activity.tasks)
    queues["thumbnail_pregeneration"] = await rt.thumbnail_queue.depth()
