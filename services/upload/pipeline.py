"""Upload pipeline: stream to a temp file, store the bytes once, record the media.

No FastAPI here: routes parse HTTP and call `run` with plain values.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.auth.users import UserInfo
from shared.db.repositories.media import (
    MediaIdTaken,
    MediaRecord,
    find_object_by_sha256,
    insert_media,
    is_sha256_quarantined,
)
from shared.ids.media_id import new_media_id
from shared.matrix.disposition import clean_filename
from shared.matrix.errors import BadRequest, Forbidden, TooLarge
from shared.runtime import Runtime
from shared.storage.base import StoredObject
from shared.storage.keys import content_key
from shared.storage.spool import SpooledFile, SpoolTooLarge, spool_to_temp

MEDIA_ID_ATTEMPTS = 10


@dataclass(frozen=True)
class UploadRequest:
    server_name: str
    user: UserInfo
    content_type: str
    filename: str | None
    declared_length: int | None
    body: AsyncIterator[bytes]


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"The upload is larger than the limit of {limit} bytes")


async def _spool(rt: Runtime, req: UploadRequest, max_bytes: int) -> SpooledFile:
    try:
        return await spool_to_temp(req.body, rt.temp_dir, max_bytes or None)
    except SpoolTooLarge as exc:
        raise _too_large(max_bytes) from exc


async def _store_once(rt: Runtime, spooled: SpooledFile, content_type: str) -> StoredObject:
    """Put the bytes in the local-media datastore unless an identical object is already stored.

    The lock on the hash makes two machines receiving the same bytes at the same moment write
    them once; the content-addressed key makes a repeated write harmless anyway.
    """
    async with rt.coordinator.lock(f"upload:{spooled.sha256}", ttl_seconds=60, wait_seconds=600):
        async with rt.sessions() as session:
            existing = await find_object_by_sha256(session, spooled.sha256)
        if existing is not None:
            datastore_id, location = existing
            store = rt.datastores.get(datastore_id)
            if await store.exists(location):
                return StoredObject(datastore_id, location, spooled.size_bytes)
        store = rt.datastores.for_kind("local_media")
        return await store.put_file(content_key(spooled.sha256), spooled.path, content_type)


async def _record(rt: Runtime, req: UploadRequest, spooled: SpooledFile, stored: StoredObject) -> MediaRecord:
    for _ in range(MEDIA_ID_ATTEMPTS):
        record = MediaRecord(
            origin=req.server_name,
            media_id=new_media_id(rt.ids),
            upload_name=clean_filename(req.filename),
            content_type=req.content_type,
            user_id=req.user.user_id,
            sha256=spooled.sha256,
            size_bytes=spooled.size_bytes,
            creation_ts=int(time.time() * 1000),
            datastore_id=stored.datastore_id,
            location=stored.location,
            authenticated=rt.config.repo.freeze_unauthenticated_media,
        )
        async with rt.sessions() as session:
            try:
                await insert_media(session, record)
                await session.commit()
                return record
            except MediaIdTaken:
                continue
    raise RuntimeError("could not allocate a unique media ID")


async def run(rt: Runtime, req: UploadRequest) -> MediaRecord:
    limits = rt.config.uploads_for(req.server_name)
    # Step 1: refuse what is declared too large before reading a byte.
    if limits.max_bytes and req.declared_length is not None and req.declared_length > limits.max_bytes:
        raise _too_large(limits.max_bytes)
    # Step 2: stream the body to a temp file, hashing as it goes; the limit holds mid-stream too.
    spooled = await _spool(rt, req, limits.max_bytes)
    async with spooled:
        # Step 3: checks that need the whole body.
        if spooled.size_bytes < limits.min_bytes:
            raise BadRequest(f"The upload is smaller than the minimum of {limits.min_bytes} bytes")
        async with rt.sessions() as session:
            if await is_sha256_quarantined(session, spooled.sha256):
                raise Forbidden("This content has been quarantined and cannot be uploaded")
        # Step 4: store the bytes once.
        stored = await _store_once(rt, spooled, req.content_type)
        # Step 5: record the media under a new ID.
        return await _record(rt, req, spooled, stored)
