"""Upload pipeline: stream to a temp file, store the bytes once, record the media.

No FastAPI here: routes parse HTTP and call `run` with plain values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.auth.users import UserInfo
from shared.db.repositories.media import MediaRecord
from shared.matrix.errors import BadRequest, TooLarge
from shared.media.store import refuse_quarantined, store_local_media
from shared.runtime import Runtime
from shared.storage.spool import SpooledFile, SpoolTooLarge, spool_to_temp


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
        await refuse_quarantined(rt, spooled.sha256)
        # Step 4: store the bytes once and record the media under a new ID.
        return await store_local_media(
            rt,
            server_name=req.server_name,
            user_id=req.user.user_id,
            content_type=req.content_type,
            filename=req.filename,
            spooled=spooled,
        )
