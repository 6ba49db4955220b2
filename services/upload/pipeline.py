"""Upload pipelines: `POST /upload` (sync), `PUT /upload/{server}/{id}` (async, into a reserved ID).

Both refuse what they can before reading a byte, stream the body to a temp file (hashing as it
goes, the size limit enforced mid-stream), then store the bytes once and record the media. A
failed upload leaves no row, no object and no temp file. No FastAPI here: routes parse HTTP and
call `run` / `run_put` with plain values.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.upload import reservations
from services.upload.limits import (
    check_content_type,
    check_declared_size,
    check_final_size,
    check_quota,
    quota_for,
    quota_guard,
    too_large,
)
from shared.auth.users import UserInfo
from shared.config import QuotaUserConfig, UploadsConfig
from shared.db.repositories.media import MediaRecord
from shared.matrix.errors import MatrixError
from shared.media.pending import announce_uploaded
from shared.media.store import store_local_media
from shared.media.thumbnail_queue import request_pregeneration
from shared.runtime import Runtime
from shared.storage.spool import SpooledFile, SpoolTooLarge, spool_to_temp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadRequest:
    # The homeserver the request's Host selected: its limits apply, its name is the MXC origin.
    server_name: str
    user: UserInfo
    content_type: str
    filename: str | None
    declared_length: int | None
    body: AsyncIterator[bytes]


class StorageFailed(MatrixError):
    def __init__(self) -> None:
        super().__init__(503, "M_UNKNOWN", "The media could not be stored right now; try again later")


async def _check_before_body(
    rt: Runtime, limits: UploadsConfig, quota: QuotaUserConfig | None, req: UploadRequest
) -> None:
    check_declared_size(limits, req.declared_length)
    check_content_type(limits, req.content_type)
    await check_quota(rt, quota, req.user.user_id, req.declared_length or 0)


async def _spool(rt: Runtime, req: UploadRequest, max_bytes: int) -> SpooledFile:
    try:
        return await spool_to_temp(req.body, rt.temp_dir, max_bytes or None, rt.temp_tag)
    except SpoolTooLarge as exc:
        raise too_large(max_bytes) from exc


async def _store(
    rt: Runtime, req: UploadRequest, quota: QuotaUserConfig | None, spooled: SpooledFile,
    media_id: str | None,
) -> MediaRecord:
    try:
        async with quota_guard(rt, quota, req.user.user_id, spooled.size_bytes):
            record = await store_local_media(
                rt,
                server_name=req.server_name,
                user_id=req.user.user_id,
                content_type=req.content_type,
                filename=req.filename,
                spooled=spooled,
                media_id=media_id,
            )
    except MatrixError:
        raise
    except Exception as exc:
        log.exception("storing an upload of %d bytes failed", spooled.size_bytes)
        raise StorageFailed() from exc
    # Thumbnails of the configured sizes are made by the thumbnail pool, never in this request.
    await request_pregeneration(rt, record)
    return record




def _limits(rt: Runtime, req: UploadRequest) -> tuple[UploadsConfig, QuotaUserConfig | None]:
    limits = rt.config.uploads_for(req.server_name)
    return limits, quota_for(limits, req.user.user_id)


async def run(rt: Runtime, req: UploadRequest) -> MediaRecord:
    """`POST /upload`: new media under a fresh ID."""
    limits, quota = _limits(rt, req)
    # Step 1: refuse before a byte is read (declared size, content type, quota).
    await _check_before_body(rt, limits, quota, req)
    # Step 2: stream the body to a temp file, hashing as it goes; the size limit holds mid-stream.
    spooled = await _spool(rt, req, limits.max_bytes)
    async with spooled:
        # Step 3: the minimum size, now that the whole body is in.
        check_final_size(limits, spooled.size_bytes)
        # Step 4: store the bytes once (lock on the hash; quarantined bytes refused) and record
        # the media, inside the quota.
        return await _store(rt, req, quota, spooled, media_id=None)


async def run_put(rt: Runtime, req: UploadRequest, origin: str, media_id: str) -> MediaRecord:
    """`PUT /upload/{origin}/{media_id}`: content for an ID reserved by `/create`."""
    # Step 1: claim the ID before reading the body: 404 / 403 / 409 decided here, cluster-wide.
    async with reservations.claim(rt, req.server_name, origin, media_id, req.user.user_id):
        limits, quota = _limits(rt, req)
        # Step 2: refuse before a byte is read (declared size, content type, quota).
        await _check_before_body(rt, limits, quota, req)
        # Step 3: stream the body to a temp file (size limit enforced mid-stream).
        spooled = await _spool(rt, req, limits.max_bytes)
        async with spooled:
            # Step 4: the minimum size, now that the whole body is in.
            check_final_size(limits, spooled.size_bytes)
            # Step 5: store once (quarantined bytes refused) and record; the row replaces the
            # reservation in one transaction.
            record = await _store(rt, req, quota, spooled, media_id=media_id)
    # Step 6: wake downloads and thumbnails waiting for this ID, on any machine.
    await announce_uploaded(rt.coordinator, origin, media_id)
    return record
