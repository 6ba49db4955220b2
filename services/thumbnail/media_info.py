"""`GET /_matrix/media/unstable/info/{serverName}/{mediaId}`: what matrix-media-repo tells about
one media item: type, size, SHA-256, an image's dimensions, an audio file's duration and
channels, and the thumbnails made of it so far.

Finding the media is `shared.media.source`'s, as for thumbnails (local, pending async upload,
or remote fetched once). Reading dimensions and durations parses untrusted files, so it runs in a thumbnail
worker process (its memory and time limits apply), on media no larger than
`thumbnails.maxSourceBytes`; bigger media gets the fields that need no parsing.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.thumbnail.context import ThumbnailContext
from services.thumbnail.worker.pool import WorkerFailure
from services.thumbnail.worker.probe import probe
from shared.config import HomeserverConfig
from shared.db.repositories.media import MediaRecord
from shared.db.repositories.thumbnails import list_thumbnails
from shared.matrix.disposition import media_type, served_content_type
from shared.matrix.errors import NotFound
from shared.media.source import SourceRequest, find_source
from shared.runtime import Runtime
from shared.storage.spool import SpoolTooLarge, spool_to_temp

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class InfoRequest:
    server_name: str
    media_id: str
    allow_remote: bool
    via: HomeserverConfig | None = None


async def _record(rt: Runtime, req: InfoRequest) -> MediaRecord:
    record = await find_source(rt, SourceRequest(req.server_name, req.media_id,
                                                 authenticated_route=True,
                                                 allow_remote=req.allow_remote, via=req.via))
    if record.quarantined:
        raise NotFound()  # as for downloads: quarantined media does not exist for clients
    return record


async def _file_fields(rt: Runtime, record: MediaRecord) -> dict[str, Any]:
    content_type = media_type(record.content_type)
    limit = rt.request_config.thumbnails.max_source_bytes
    if not content_type.startswith(("image/", "audio/")) or (limit and record.size_bytes > limit):
        return {}
    prefix = f"info-{rt.temp_tag}-"  # swept by this machine's successor after a crash
    job_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix, dir=rt.temp_dir))
    try:
        store = rt.datastores.get(record.datastore_id)
        chunks = store.open_stream(record.location, chunk_size=CHUNK_BYTES)
        spooled = await spool_to_temp(chunks, job_dir, limit or None, rt.temp_tag)
        ctx = rt.part(ThumbnailContext)
        result: dict[str, Any] = await ctx.pool.run(
            probe, str(spooled.path), content_type, ctx.image_formats)
        return result
    except (WorkerFailure, SpoolTooLarge) as exc:
        log.info("media info of %s: the file was not parsed: %s", record.mxc, exc)
        return {}
    finally:
        await asyncio.to_thread(shutil.rmtree, job_dir, True)


async def run(rt: Runtime, req: InfoRequest) -> dict[str, Any]:
    # Step 1 (`shared.media.source`): valid IDs of a host not ignored; the record: local, a
    # pending async upload (waited for), or remote (fetched once).
    record = await _record(rt, req)
    # Step 2: what the file says about itself, then the thumbnails made of it so far.
    answer: dict[str, Any] = {
        "content_uri": record.mxc,
        "content_type": served_content_type(record.content_type),
        "size": record.size_bytes,
        "hashes": {"sha256": record.sha256},
        **await _file_fields(rt, record),
    }
    async with rt.sessions() as session:
        thumbs = await list_thumbnails(session, record.origin, record.media_id)
    if thumbs:
        answer["thumbnails"] = [
            {"width": t.key.width, "height": t.key.height, "ready": True,
             "content_type": t.content_type, "size": t.size_bytes}
            for t in thumbs
        ]
    return answer
