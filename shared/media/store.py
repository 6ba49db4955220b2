"""Store a finished temp file as local media: lock on the hash, store the bytes once, record a row.

Uploads (sync and async) and URL previews (the og:image is re-hosted as the requesting user's
media) all end here, so they can never disagree on how local media is written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from shared.db.repositories.media import (
    MediaIdTaken,
    MediaRecord,
    find_object_by_sha256,
    find_stored_copy,
    insert_media,
)
from shared.db.repositories.reservations import delete_reservation
from shared.ids.media_id import with_new_media_id
from shared.matrix.disposition import clean_filename
from shared.matrix.errors import CannotOverwrite, Forbidden
from shared.media.locks import lock_unless_unavailable
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.storage.base import StoredObject
from shared.storage.keys import content_key
from shared.storage.spool import SpooledFile

log = logging.getLogger(__name__)

QUARANTINED = "This content has been quarantined and cannot be uploaded"
HASH_LOCK_TTL_SECONDS = 60
HASH_LOCK_WAIT_SECONDS = 600
"""Long enough for another machine to finish storing a very large identical file."""


@dataclass(frozen=True)
class NewMedia:
    """The bytes in `spooled` and what the uploader said about them."""

    server_name: str
    user_id: str
    content_type: str
    filename: str | None
    spooled: SpooledFile
    # An async upload's reserved ID; None allocates a fresh one.
    media_id: str | None = None


async def _store_once(rt: Runtime, spooled: SpooledFile, content_type: str) -> tuple[StoredObject, bool]:
    """Put the bytes in the local-media datastore unless a recorded copy is already stored.

    Returns the object and whether this call is its only user so far (True: nothing recorded
    points at it, so it must go if recording fails). Refuses quarantined bytes before storing
    anything. Call with the hash lock held.
    """
    async with rt.sessions() as session:
        existing = await find_stored_copy(session, spooled.sha256)
    if existing is not None:
        if existing.quarantined:
            raise Forbidden(QUARANTINED)
        if await rt.datastores.get(existing.datastore_id).exists(existing.location):
            return StoredObject(existing.datastore_id, existing.location, spooled.size_bytes), False
    store = rt.datastores.for_kind("local_media")
    return await store.put_file(content_key(spooled.sha256), spooled.path, content_type), True


def _record_for(rt: Runtime, new: NewMedia, media_id: str, stored: StoredObject) -> MediaRecord:
    return MediaRecord(
        origin=new.server_name,
        media_id=media_id,
        upload_name=clean_filename(new.filename),
        content_type=new.content_type,
        user_id=new.user_id,
        sha256=new.spooled.sha256,
        size_bytes=new.spooled.size_bytes,
        creation_ts=int(time.time() * 1000),
        datastore_id=stored.datastore_id,
        location=stored.location,
        # Freeze applies by upload time: media keeps the flag it got here whatever the config later.
        authenticated=rt.config.repo.freeze_unauthenticated_media,
    )


async def _record_fresh(rt: Runtime, new: NewMedia, stored: StoredObject) -> MediaRecord:
    """Insert a media row under a fresh media ID (retrying the rare ID collision)."""

    async def insert(media_id: str) -> MediaRecord:
        record = _record_for(rt, new, media_id, stored)
        async with rt.sessions() as session:
            await insert_media(session, record)
            await session.commit()
        return record

    return await with_new_media_id(rt.ids, insert, MediaIdTaken)


async def _record_reserved(rt: Runtime, new: NewMedia, media_id: str, stored: StoredObject) -> MediaRecord:
    """Fill a reserved ID: the media row replaces the reservation in one transaction."""
    record = _record_for(rt, new, media_id, stored)
    async with rt.sessions() as session:
        try:
            await insert_media(session, record)
        except MediaIdTaken as exc:
            raise CannotOverwrite() from exc
        await delete_reservation(session, record.origin, record.media_id)
        await session.commit()
    return record


async def _forget_unreferenced(rt: Runtime, stored: StoredObject, sha256: str) -> None:
    """Delete an object written for a row that was never recorded (unless a row now uses it)."""
    async with rt.sessions() as session:
        if await find_object_by_sha256(session, sha256) is not None:
            return
    try:
        await rt.datastores.get(stored.datastore_id).delete(stored.location)
    except Exception:
        log.exception("could not delete unrecorded object %s/%s", stored.datastore_id, stored.location)


async def store_local_media(
    rt: Runtime,
    *,
    server_name: str,
    user_id: str,
    content_type: str,
    filename: str | None,
    spooled: SpooledFile,
    media_id: str | None = None,
) -> MediaRecord:
    """Store `spooled` once and record it as local media owned by `user_id`.

    The hash lock spans store and record, so two machines receiving the same bytes at the same
    moment write one object, and an object written for a row that then fails to record is
    removed again (nobody else can be between storing and recording these bytes). The caller
    still owns (and discards) the temp file. Quarantined content is refused (403), nothing stored.
    `media_id` fills an async upload's reservation instead of allocating a fresh ID; it raises
    `CannotOverwrite` when that ID already has content.
    """
    new = NewMedia(server_name, user_id, content_type, filename, spooled, media_id)
    sha256 = new.spooled.sha256
    async with lock_unless_unavailable(
        rt.coordinator, f"upload:{sha256}", HASH_LOCK_TTL_SECONDS, HASH_LOCK_WAIT_SECONDS
    ):
        stored, only_user = await _store_once(rt, new.spooled, new.content_type)
        try:
            if new.media_id is None:
                record = await _record_fresh(rt, new, stored)
            else:
                record = await _record_reserved(rt, new, new.media_id, stored)
        except BaseException:
            if only_user:
                await _forget_unreferenced(rt, stored, sha256)
            raise
    metrics.media_stored(rt, record.size_bytes)
    return record
