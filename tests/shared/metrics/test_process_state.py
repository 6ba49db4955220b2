"""What a process holds, on its `/metrics` after real work: its lease, a task's progress and
outcome, the queues waiting, a contended lock's wait, and Redis errors that failing open hid."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from shared.config import parse_config
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, task
from shared.tasks.schedule import create_task, wait_for_task
from tests.conftest import embedded_raw_config
from tests.infra.http_server import ServerThread, free_port, free_ports
from tests.services.upload.helpers import unique_bytes, upload
from tests.shared.metrics.conftest import MeteredMmr, Scrape, embedded_app, metrics_section, scrape

IDS = {"service": "embedded", "machine_id": "0"}
GATES: dict[str, threading.Event] = {}


@task("test_metrics_gated")
async def gated_task(ctx: TaskContext) -> dict[str, Any]:
    """Checkpoints 2 of 5, waits at its gate (a thread event: the test is in another loop),
    then finishes; or fails when asked to."""
    if ctx.params.get("fail"):
        raise RuntimeError("asked to fail")
    await ctx.checkpoint({}, done=2, total=5)
    gate = GATES[str(ctx.params["gate"])]
    await asyncio.to_thread(gate.wait, 60)
    await ctx.checkpoint({}, done=5, total=5)
    return {}


@pytest.fixture(scope="module")
def metered_redis(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[MeteredMmr]:
    """The embedded default with metrics, coordinating through real Redis (locks, task channel)."""
    data_dir: Path = tmp_path_factory.mktemp("metered-redis")
    port = free_port()
    config = parse_config(embedded_raw_config(
        data_dir, metrics=metrics_section(port), redis={"enabled": True, "url": redis_url}))
    with ExitStack() as stack:
        server = stack.enter_context(ServerThread(embedded_app(config)))
        yield MeteredMmr(server.url, config, data_dir, port)


async def eventually(read: Callable[[], Scrape], check: Callable[[Scrape], bool],
                     seconds: float = 30) -> Scrape:
    """The first scrape that passes `check` (sampled gauges update every few seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        got = await asyncio.to_thread(read)
        if check(got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


def test_machine_zero_shows_it_holds_its_lease(metered_redis: MeteredMmr) -> None:
    now = metered_redis.scrape()
    assert now.value("media_cluster_lease_held", **IDS) == 1
    assert now.value("media_cluster_lease_role", role="holder", **IDS) == 1
    assert now.value("media_cluster_lease_role", role="standby", **IDS) == 0
    assert now.value("media_cluster_lease_seconds_left", **IDS) > 0


async def test_a_running_task_shows_its_progress_then_counts_as_finished(
    metered_redis: MeteredMmr, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(metered_redis.config)
    gate_name = uuid.uuid4().hex
    gate = GATES[gate_name] = threading.Event()
    before = metered_redis.scrape()
    record = await create_task(rt, "test_metrics_gated", {"gate": gate_name})
    labels = {**IDS, "task": "test_metrics_gated"}
    running = await eventually(metered_redis.scrape,
                               lambda s: s.value("media_task_progress_done", **labels) >= 2)
    assert running.value("media_tasks_running", **labels) == 1
    assert running.value("media_task_progress_done", **labels) == 2
    assert running.value("media_task_progress_total", **labels) == 5
    gate.set()
    finished = await wait_for_task(rt, record.id, 30)
    assert finished is not None and finished.is_finished
    failing = await create_task(rt, "test_metrics_gated", {"fail": True})
    assert (await wait_for_task(rt, failing.id, 30)) is not None
    after = await eventually(metered_redis.scrape, lambda s: s.delta(
        before, "media_tasks_finished_total", outcome="failed", **labels) >= 1)
    assert after.delta(before, "media_tasks_finished_total", outcome="ok", **labels) == 1
    assert after.delta(before, "media_tasks_finished_total", outcome="failed", **labels) == 1
    assert after.value("media_tasks_running", **labels) == 0


async def test_a_reserved_media_id_shows_in_the_async_upload_queue(metered_redis: MeteredMmr) -> None:
    async with metered_redis.client() as client:
        created = await client.post("/_matrix/media/v1/create")
    assert created.status_code == 200, created.text
    now = await eventually(metered_redis.scrape, lambda s: s.value(
        "media_queue_depth", queue="async_uploads", **IDS) >= 1)
    assert now.value("media_queue_depth", queue="async_uploads", **IDS) >= 1
    assert {"tasks", "thumbnail_pregeneration"} <= {
        s.labels["queue"] for s in now.samples if s.name == "media_queue_depth"}


async def test_a_contended_hash_lock_shows_its_wait(
    metered_redis: MeteredMmr, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(metered_redis.config)
    data = unique_bytes(10_000)
    lock = f"upload:{hashlib.sha256(data).hexdigest()}"
    labels = {**IDS, "lock": "upload", "outcome": "acquired"}
    before = metered_redis.scrape()
    async with metered_redis.client() as client:
        async with rt.coordinator.lock(lock, ttl_seconds=30, wait_seconds=5):
            uploading = asyncio.create_task(upload(client, data))
            await asyncio.sleep(1.0)  # the upload is now waiting for the lock this test holds
            assert not uploading.done()
        assert (await uploading).status_code == 200
    after = metered_redis.scrape()
    assert after.delta(before, "media_lock_wait_seconds_count", **labels) >= 1
    assert after.delta(before, "media_lock_wait_seconds_sum", **labels) >= 0.5
    # Not in the lowest buckets: it waited.
    assert after.delta(before, "media_lock_wait_seconds_bucket", le="0.1", **labels) == 0


async def test_redis_errors_hidden_by_failing_open_are_counted(tmp_path: Path) -> None:
    metrics_port, dead_redis = free_ports(2)
    config = parse_config(embedded_raw_config(
        tmp_path, metrics=metrics_section(metrics_port),
        redis={"enabled": True, "url": f"redis://127.0.0.1:{dead_redis}/0"}))
    with ServerThread(embedded_app(config)) as server:
        mmr = MeteredMmr(server.url, config, tmp_path, metrics_port)
        before = scrape(metrics_port)
        async with mmr.client() as client:
            assert (await upload(client, unique_bytes(5_000))).status_code == 200
        after = scrape(metrics_port)
    assert after.delta(before, "media_dependency_errors_total", dependency="redis",
                       service="embedded") >= 1
    assert after.delta(before, "media_lock_wait_seconds_count", lock="upload",
                       outcome="unavailable", service="embedded") >= 1
