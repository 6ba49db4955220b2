"""Machine 0 forgets remote media unused for `downloads.expireAfterDays` and thumbnails older
than `thumbnails.expireAfterDays`; shared objects go only with their last row."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from services.admin.recurring.media_purge import (
    DAY_MS,
    purge_old_thumbnails,
    purge_remote_media,
    start_remote_media_purge,
)
from shared.config import MmrConfig, parse_config
from shared.db.repositories.media import MediaRecord, get_media, insert_media
from shared.db.repositories.thumbnails import ThumbnailKey, ThumbnailRecord, get_thumbnail, insert_thumbnail
from shared.runtime import Runtime
from shared.storage.keys import content_key
from tests.conftest import cluster_raw_config, embedded_raw_config, new_bucket
from tests.infra.seaweedfs import S3Server

NOW = int(time.time() * 1000)


@pytest.fixture(params=["embedded", "cluster"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> MmrConfig:
    extra = {"downloads": {"expireAfterDays": 7}, "thumbnails": {"expireAfterDays": 30}}
    if request.param == "embedded":
        return parse_config(embedded_raw_config(tmp_path, **extra))
    s3: S3Server = request.getfixturevalue("s3_server")
    return parse_config(cluster_raw_config(tmp_path, request.getfixturevalue("pg_url"),
                                           request.getfixturevalue("redis_url"), s3, new_bucket(s3),
                                           **extra))


async def stored(rt: Runtime, tmp_path: Path, data: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"obj-{sha[:8]}"
    path.write_bytes(data)
    store = rt.datastores.for_kind("remote_media")
    obj = await store.put_file(content_key(sha), path, "image/png")
    return sha, obj.location


async def add_media(
    rt: Runtime, origin: str, media_id: str, sha: str, location: str, age_days: float
) -> None:
    async with rt.sessions() as session:
        await insert_media(session, MediaRecord(
            origin=origin, media_id=media_id, upload_name=None, content_type="image/png",
            user_id=None, sha256=sha, size_bytes=1, creation_ts=NOW - int(age_days * DAY_MS),
            datastore_id=rt.datastores.for_kind("remote_media").id, location=location))
        await session.commit()


async def media_exists(rt: Runtime, origin: str, media_id: str) -> bool:
    async with rt.sessions() as session:
        return await get_media(session, origin, media_id) is not None


async def object_exists(rt: Runtime, location: str) -> bool:
    return await rt.datastores.for_kind("remote_media").exists(location)


async def test_remote_media_unused_for_the_period_is_forgotten(
    config: MmrConfig, runtime_for: Any, tmp_path: Path
) -> None:
    rt = await runtime_for(config, machine_id=0)
    run = f"r{time.time_ns()}"
    shared_sha, shared_obj = await stored(rt, tmp_path, f"shared {run}".encode())
    alone_sha, alone_obj = await stored(rt, tmp_path, f"alone {run}".encode())
    await add_media(rt, "remote.example", f"{run}old", shared_sha, shared_obj, age_days=8)
    await add_media(rt, "remote.example", f"{run}fresh", shared_sha, shared_obj, age_days=1)
    await add_media(rt, "remote.example", f"{run}alone", alone_sha, alone_obj, age_days=30)
    await add_media(rt, "localhost", f"{run}local", alone_sha, alone_obj, age_days=300)

    assert await purge_remote_media(rt, NOW) >= 2
    assert not await media_exists(rt, "remote.example", f"{run}old")
    assert not await media_exists(rt, "remote.example", f"{run}alone")
    assert await media_exists(rt, "remote.example", f"{run}fresh")
    assert await media_exists(rt, "localhost", f"{run}local"), "local media is never purged"
    assert await object_exists(rt, shared_obj), "still used by the fresh copy"
    assert await object_exists(rt, alone_obj), "still used by the local upload"

    assert await purge_remote_media(rt, NOW + 7 * DAY_MS) >= 1
    assert not await media_exists(rt, "remote.example", f"{run}fresh")
    assert not await object_exists(rt, shared_obj), "its last row is gone, so is the object"


async def test_old_thumbnails_are_forgotten(config: MmrConfig, runtime_for: Any, tmp_path: Path) -> None:
    rt = await runtime_for(config, machine_id=0)
    run = f"t{time.time_ns()}"
    sha, location = await stored(rt, tmp_path, f"thumb {run}".encode())
    store_id = rt.datastores.for_kind("remote_media").id
    keys = [ThumbnailKey("localhost", run, 96, 96, "crop", False),
            ThumbnailKey("localhost", run, 320, 240, "scale", False)]
    async with rt.sessions() as session:
        for key, age in zip(keys, (31, 2), strict=True):
            await insert_thumbnail(session, ThumbnailRecord(
                key=key, content_type="image/png", sha256=sha, size_bytes=1,
                creation_ts=NOW - age * DAY_MS, datastore_id=store_id, location=location))

    assert await purge_old_thumbnails(rt, NOW) >= 1
    async with rt.sessions() as session:
        assert await get_thumbnail(session, keys[0]) is None
        assert await get_thumbnail(session, keys[1]) is not None
    assert await object_exists(rt, location), "the newer thumbnail shares the bytes"
    assert await purge_old_thumbnails(rt, NOW + 29 * DAY_MS) >= 1
    assert not await object_exists(rt, location)


async def test_only_machine_zero_runs_the_purges(config: MmrConfig, runtime_for: Any) -> None:
    machine_zero = await runtime_for(config, machine_id=0)  # migrates; the other waits for it
    assert await start_remote_media_purge(await runtime_for(config, machine_id=4)) is None
    stop = await start_remote_media_purge(machine_zero, interval_seconds=3600)
    assert stop is not None
    await stop()


async def test_off_by_default(tmp_path: Path, runtime_for: Any) -> None:
    rt = await runtime_for(parse_config(embedded_raw_config(tmp_path)), machine_id=0)
    assert await purge_remote_media(rt) == 0
    assert await purge_old_thumbnails(rt) == 0
    assert await start_remote_media_purge(rt) is None
