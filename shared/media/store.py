"""Store a finished temp file as local media: lock on the hash, store the bytes once, record a row.

Uploads and URL previews (the og:image is re-hosted as the requesting user's media) both end
here, so the two can never disagree on how local media is written.
"""

from __future__ import annotations

import time

from shared.db.repositories.media import (
    MediaIdTaken,
    MediaRecord,
    find_object_by_sha256,
    insert_media,
    is_sha256_quarantined,
)
from shared.ids.media_id import new_media_id
from shared.matrix.disposition import clean_filename
from shared.matrix.errors import Forbidden
from shared.runtime import Runtime
from shared.storage.base import StoredObject
from shared.storage.keys import content_key
from shared.storage.spool import SpooledFile

MEDIA_ID_ATTEMPTS = 10


async def refuse_quarantined(rt: Runtime, sha256: str) -> None:
    """Raise `Forbidden` when content with this hash has been quarantined."""
    async with rt.sessions() as session:
        if await is_sha256_quarantined(session, sha256):
            raise Forbidden("This content has been quarantined and cannot be uploaded")


async def store_once(rt: Runtime, spooled: SpooledFile, content_type: str) -> StoredObject:
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


async def record_media(
    rt: Runtime,
    *,
    server_name: str,
    user_id: str,
    content_type: str,
    filename: str | None,
    spooled: SpooledFile,
    stored: StoredObject,
) -> MediaRecord:
    """Insert a media row under a fresh media ID (retrying the rare ID collision)."""
    for _ in range(MEDIA_ID_ATTEMPTS):
        record = MediaRecord(
            origin=server_name,
            media_id=new_media_id(rt.ids),
            upload_name=clean_filename(filename),
            content_type=content_type,
            user_id=user_id,
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


async def store_local_media(
    rt: Runtime,
    *,
    server_name: str,
    user_id: str,
    content_type: str,
    filename: str | None,
    spooled: SpooledFile,
) -> MediaRecord:
    """Store `spooled` once and record it as new local media owned by `user_id`.

    The caller still owns (and discards) the temp file, and has already refused quarantined content.
    """
    stored = await store_once(rt, spooled, content_type)
    return await record_media(
        rt,
        server_name=server_name,
        user_id=user_id,
        content_type=content_type,
        filename=filename,
        spooled=spooled,
        stored=stored,
    )
