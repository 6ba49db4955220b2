"""`GET /_matrix/media/unstable/info/{serverName}/{mediaId}`: what matrix-media-repo tells about
one media item: type, size, SHA-256, an image's dimensions, an audio file's duration and
channels, and the thumbnails made of it so far.

Finding the media is the thumbnail pipeline's (local, pending async upload, or remote fetched
once). Reading dimensions and durations parses untrusted files, so it runs in a thumbnail
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

from services.thumbnail import pipeline
from services.thumbnail.context import context_of
from services.thumbnail.workers import WorkerFailure
from shared.config import HomeserverConfig
from shared.db.repositories.media import MediaRecord, get_media
from shared.db.repositories.thumbnails import list_thumbnails
from shared.ids.media_id import is_valid_media_id, is_valid_server_name
from shared.matrix.errors import NotFound
from shared.media.remote import is_ignored_host
from shared.runtime import Runtime
from shared.storage.spool import SpoolTooLarge, spool_to_temp

log = logging.getLogger(__name__)

PROBE_JOB = "services.thumbnail.media_info:probe"
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class InfoRequest:
    server_name: str
    media_id: str
    allow_remote: bool
    via: HomeserverConfig | None = None


def probe(path: str, content_type: str, image_formats: tuple[str, ...]) -> dict[str, Any]:
    """In a worker: the fields the file itself tells (nothing when it cannot be parsed)."""
    try:
        if content_type.startswith("image/"):
            return _image_fields(path, image_formats)
        if content_type.startswith("audio/"):
            return _audio_fields(path)
    except Exception as exc:  # untrusted input: a file that does not parse just says less
        log.debug("media info: cannot parse %s as %s: %s", path, content_type, exc)
    return {}


def _image_fields(path: str, image_formats: tuple[str, ...]) -> dict[str, Any]:
    from PIL import Image

    import services.thumbnail.decoders  # noqa: F401  (HEIF and AVIF openers, decoder settings)

    # Only the decoders the operator's thumbnails.types allow; the header only, no pixels.
    with Image.open(path, formats=list(image_formats)) as image:
        width, height = image.size
    return {"width": width, "height": height}


def _audio_fields(path: str) -> dict[str, Any]:
    import av

    with av.open(path) as container:
        stream = next(s for s in container.streams if s.type == "audio")
        fields: dict[str, Any] = {}
        if container.duration:
            fields["duration"] = container.duration / 1_000_000  # av.time_base: microseconds
        channels = getattr(stream.codec_context, "channels", None) or getattr(
            getattr(stream.codec_context, "layout", None), "nb_channels", None)
        if channels:
            fields["num_channels"] = int(channels)
        if stream.frames:
            fields["num_total_samples"] = int(stream.frames)
    return fields


async def _record(rt: Runtime, req: InfoRequest) -> MediaRecord:
    async with rt.sessions() as session:
        record = await get_media(session, req.server_name, req.media_id)
    if record is None:
        thumb_req = pipeline.ThumbnailRequest(
            req.server_name, req.media_id, pipeline.ThumbnailParams(1, 1, "scale", None, None),
            allow_remote=req.allow_remote, allow_redirect=False, authenticated_route=True,
            via=req.via,
        )
        record = await pipeline._find_source(rt, thumb_req)
    if record.quarantined:
        raise NotFound()  # as for downloads: quarantined media does not exist for clients
    return record


async def _file_fields(rt: Runtime, record: MediaRecord) -> dict[str, Any]:
    content_type = (record.content_type or "").lower()
    limit = rt.config.thumbnails.max_source_bytes
    if not content_type.startswith(("image/", "audio/")) or (limit and record.size_bytes > limit):
        return {}
    job_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="info-", dir=rt.temp_dir))
    try:
        store = rt.datastores.get(record.datastore_id)
        chunks = store.open_stream(record.location, chunk_size=CHUNK_BYTES)
        spooled = await spool_to_temp(chunks, job_dir, limit or None)
        ctx = context_of(rt)
        result: dict[str, Any] = await ctx.pool.run(
            PROBE_JOB, str(spooled.path), content_type, ctx.image_formats)
        return result
    except (WorkerFailure, SpoolTooLarge) as exc:
        log.info("media info of %s: the file was not parsed: %s", record.mxc, exc)
        return {}
    finally:
        await asyncio.to_thread(shutil.rmtree, job_dir, True)


async def run(rt: Runtime, req: InfoRequest) -> dict[str, Any]:
    # Step 1: IDs outside the spec's grammar name nothing; ignored hosts' media is not served.
    if not is_valid_server_name(req.server_name) or not is_valid_media_id(req.media_id):
        raise NotFound("Invalid server name or media ID")
    if is_ignored_host(rt, req.server_name):
        raise NotFound("Media from this server is not served here")
    # Step 2: the record: local, a pending async upload (waited for), or remote (fetched once).
    record = await _record(rt, req)
    # Step 3: what the file says about itself, then the thumbnails made of it so far.
    answer: dict[str, Any] = {
        "content_uri": record.mxc,
        "content_type": record.content_type or "application/octet-stream",
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
