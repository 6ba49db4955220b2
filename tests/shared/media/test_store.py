"""The one media writer's entry points for callers other than uploads: imports and transfers.

Run on the embedded default's shape (SQLite, file datastores, in-process coordination).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.config import parse_config
from shared.db.repositories.media import get_media
from shared.db.repositories.quotas import user_usage
from shared.matrix.errors import CannotOverwrite
from shared.media.store import MediaWrite, ObjectCopy, copy_object, store_media
from shared.runtime import Runtime
from shared.storage.keys import content_key
from shared.storage.spool import SpooledFile
from tests.conftest import SERVER_NAME, embedded_raw_config

IMPORTED_TS = 1_600_000_000_000


@pytest.fixture
async def rt(tmp_path: Path, runtime_for: Any) -> Runtime:
    quotas = {"enabled": True, "users": [{"glob": "@alice:*", "maxFiles": 1}]}
    raw = embedded_raw_config(tmp_path, uploads={"quotas": quotas})
    raw["datastores"].append({"id": "other", "type": "file", "forKinds": ["archives"],
                              "opts": {"path": str(tmp_path / "other")}})
    runtime: Runtime = await runtime_for(parse_config(raw), machine_id=0)
    return runtime


def spooled(rt: Runtime, data: bytes) -> SpooledFile:
    path = rt.temp_dir / f"import-{os.urandom(4).hex()}"
    path.write_bytes(data)
    return SpooledFile(path, hashlib.sha256(data).hexdigest(), len(data))


def imported(media_id: str, user_id: str = "@alice:localhost") -> MediaWrite:
    return MediaWrite(kind="local", origin=SERVER_NAME, media_id=media_id, user_id=user_id,
                      content_type="image/png", filename="cat.png", check_quota=False,
                      creation_ts=IMPORTED_TS)


async def test_an_import_keeps_its_media_id_uploader_and_time_beyond_the_quota(rt: Runtime) -> None:
    for media_id in ("importedAAAAAAAAAAAAAAAAAAA", "importedBBBBBBBBBBBBBBBBBBB"):
        async with spooled(rt, os.urandom(64)) as source:
            record = await store_media(rt, imported(media_id), source)
        assert (record.media_id, record.user_id, record.creation_ts) == (
            media_id, "@alice:localhost", IMPORTED_TS)
    async with rt.sessions() as session:
        row = await get_media(session, SERVER_NAME, "importedBBBBBBBBBBBBBBBBBBB")
        usage = await user_usage(session, "@alice:localhost")
    assert row is not None and row.upload_name == "cat.png"
    assert usage.files == 2  # over the quota of 1: operators' imports are not held to it


async def test_an_import_into_a_taken_media_id_is_refused_and_stores_nothing(rt: Runtime) -> None:
    async with spooled(rt, b"first") as source:
        await store_media(rt, imported("takenAAAAAAAAAAAAAAAAAAAAAA"), source)
    other = b"other bytes"
    async with spooled(rt, other) as source:
        with pytest.raises(CannotOverwrite):
            await store_media(rt, imported("takenAAAAAAAAAAAAAAAAAAAAAA"), source)
    store = rt.datastores.for_kind("local_media")
    assert not await store.exists(content_key(hashlib.sha256(other).hexdigest()))


async def test_a_transfer_copies_an_object_to_another_datastore(rt: Runtime) -> None:
    data = os.urandom(1000)
    async with spooled(rt, data) as source:
        record = await store_media(rt, imported("movedAAAAAAAAAAAAAAAAAAAAAA"), source)
    target = rt.datastores.get("other")
    copy = ObjectCopy(record.datastore_id, record.location, record.sha256, "image/png")
    stored = await copy_object(rt, copy, target)
    assert (stored.datastore_id, stored.location, stored.size_bytes) == ("other", record.location, 1000)
    assert b"".join([chunk async for chunk in target.open_stream(stored.location)]) == data
    assert await rt.datastores.get(record.datastore_id).exists(record.location)  # the original stays


@dataclass(frozen=True)
class KeptFile:
    """A source that must stay where it is (as a stored object a thumbnail reuses)."""

    path: Path
    sha256: str
    size_bytes: int
    disposable: bool = False


async def test_a_disposable_source_is_moved_into_a_file_datastore_and_others_are_not(
    rt: Runtime,
) -> None:
    moved = os.urandom(500)
    async with spooled(rt, moved) as source:
        inode = source.path.stat().st_ino
        record = await store_media(rt, imported("moveAAAAAAAAAAAAAAAAAAAAAAA"), source)
        assert not source.path.exists()
    stored = await rt.datastores.get(record.datastore_id).local_path(record.location)
    assert stored is not None and stored.stat().st_ino == inode
    kept = rt.temp_dir / "kept"
    kept.write_bytes(b"kept bytes")
    record = await store_media(rt, imported("keepAAAAAAAAAAAAAAAAAAAAAAA"),
                               KeptFile(kept, hashlib.sha256(b"kept bytes").hexdigest(), 10))
    assert kept.read_bytes() == b"kept bytes"
    stored = await rt.datastores.get(record.datastore_id).local_path(record.location)
    assert stored is not None and stored.read_bytes() == b"kept bytes"
