"""The recurring purge of old URL previews: what goes, what stays, and who runs it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from services.admin.recurring.preview_purge import purge_old_previews, start_preview_purge
from shared.config import parse_config
from shared.db.models import UrlPreviewRow
from shared.db.repositories.previews import CachedPreview, insert_preview
from shared.runtime import Runtime
from shared.tasks.runner import TaskRunner
from tests.conftest import cluster_raw_config, embedded_raw_config, new_bucket
from tests.infra.seaweedfs import S3Server

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


async def seed(rt: Runtime, now: int, ages_in_hours: list[int], url: str = "http://a.test/") -> None:
    async with rt.sessions() as session:
        for age in ages_in_hours:
            bucket = now - now % HOUR_MS - age * HOUR_MS
            await insert_preview(session, url, "en", bucket, CachedPreview(preview={}), bucket)
        await session.commit()


async def stored_ages(rt: Runtime, now: int, url: str = "http://a.test/") -> list[int]:
    async with rt.sessions() as session:
        buckets = (await session.scalars(select(UrlPreviewRow.bucket_ts)
                                         .where(UrlPreviewRow.url == url))).all()
    return sorted((now - now % HOUR_MS - b) // HOUR_MS for b in buckets)


async def test_previews_older_than_expire_after_days_are_purged(tmp_path: Path, runtime_for: Any) -> None:
    config = parse_config(embedded_raw_config(tmp_path, urlPreviews={"expireAfterDays": 2}))
    rt = await runtime_for(config, machine_id=0)
    now = int(time.time() * 1000)
    await seed(rt, now, [0, 1, 47, 48, 49, 24 * 30])
    assert await purge_old_previews(rt, now) == 3
    assert await stored_ages(rt, now) == [0, 1, 47]


async def test_expire_after_days_zero_keeps_everything(tmp_path: Path, runtime_for: Any) -> None:
    rt = await runtime_for(parse_config(embedded_raw_config(tmp_path)), machine_id=0)
    now = int(time.time() * 1000)
    await seed(rt, now, [0, 24 * 365])
    assert await purge_old_previews(rt, now) == 0
    assert await start_preview_purge(rt) is None
    assert await stored_ages(rt, now) == [0, 24 * 365]


async def test_machine_zero_purges_at_start_and_other_machines_never(
    tmp_path: Path, runtime_for: Any, fresh_pg: str, redis_url: str, s3_server: S3Server
) -> None:
    config = parse_config(cluster_raw_config(tmp_path, fresh_pg, redis_url, s3_server,
                                             new_bucket(s3_server), urlPreviews={"expireAfterDays": 1}))
    machine_zero = await runtime_for(config, machine_id=0)
    other = await runtime_for(config, machine_id=3)
    now = int(time.time() * 1000)
    url = f"http://purge-{now}.test/"
    await seed(machine_zero, now, [0, 30], url)

    assert await start_preview_purge(other) is None
    stop = await start_preview_purge(machine_zero, interval_seconds=3600)
    assert stop is not None
    runner = TaskRunner(machine_zero, poll_seconds=30)  # each round runs as a task
    runner.start()
    try:
        for _ in range(100):
            if await stored_ages(machine_zero, now, url) == [0]:
                break
            await asyncio.sleep(0.02)
        assert await stored_ages(machine_zero, now, url) == [0]
    finally:
        await stop()
        await runner.stop()
