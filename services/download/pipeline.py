"""Download pipelines: find the media (fetching remote media once), decide whether this route may
serve it, then answer with its bytes, one range of them, a redirect or a 304.

`run` serves clients (v1 and the legacy routes); `run_federation` serves our own media to other
servers as the spec's two-part `multipart/mixed`.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from services.download.accel import accel_target
from services.download.context import DownloadContext
from services.download.serving import Preconditions, etag_for, range_headers, requested_range
from shared.config import HomeserverConfig
from shared.db.repositories.media import MediaRecord
from shared.federation.multipart import (
    multipart_content_type,
    new_boundary,
    write_media_multipart,
)
from shared.matrix.disposition import media_headers, served_content_type
from shared.matrix.errors import NotFound
from shared.media.source import SourceRequest, find_source
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.storage.base import primed
from shared.web.conditional import MEDIA_CACHE_CONTROL, NotModified, not_modified

STREAM_CHUNK_BYTES = 1024 * 1024
"""Bytes per datastore read: a worker-thread hop per chunk costs more than the memory saved by
smaller chunks, and this still bounds each response's buffer to one MiB."""
WHOLE_BODY_MAX_BYTES = STREAM_CHUNK_BYTES
"""Bodies up to this size are read before answering and sent as one message: a file datastore
reads them in one worker-thread hop, and the response needs no streaming machinery."""


@dataclass(frozen=True)
class DownloadRequest:
    server_name: str
    media_id: str
    file_name: str | None
    authenticated_route: bool
    # How long to wait for an async upload that has not arrived yet (None: the spec's default).
    timeout_ms: int | None = None
    allow_remote: bool = True
    allow_redirect: bool = False
    preconditions: Preconditions = field(default_factory=Preconditions)
    # The homeserver the client came through: its signing key signs any federation fetch.
    via: HomeserverConfig | None = None
    # HEAD: the headers only (the object is still opened, so a missing one is an error).
    head: bool = False


@dataclass(frozen=True)
class MediaStream:
    """The answer with a body: streamed (`body`), read already (`content`), or sent by nginx
    (`accel`: `headers` carry X-Accel-Redirect, the body here is empty)."""

    record: MediaRecord | None  # None for the quarantine replacement image
    headers: dict[str, str]
    size_bytes: int  # what the client receives, for the download budget
    body: AsyncIterator[bytes] | None = None
    content: bytes | None = None
    status: int = 200
    accel: bool = False


@dataclass(frozen=True)
class Redirect:
    """307 to where the bytes are public (an S3 `publicBaseUrl`)."""

    location: str
    headers: dict[str, str]


DownloadResult = MediaStream | Redirect | NotModified


@dataclass(frozen=True)
class FederationDownloadRequest:
    homeserver: HomeserverConfig
    media_id: str
    timeout_ms: int | None = None


@dataclass(frozen=True)
class FederationAnswer:
    content_type: str
    body: AsyncIterator[bytes]


def _source_request(req: DownloadRequest) -> SourceRequest:
    return SourceRequest(req.server_name, req.media_id, authenticated_route=req.authenticated_route,
                         allow_remote=req.allow_remote, timeout_ms=req.timeout_ms, via=req.via)


async def run(rt: Runtime, req: DownloadRequest) -> DownloadResult:
    # Steps 1-4 (`shared.media.source`, shared with thumbnails): valid IDs of a served host; our
    # own media (maybe still being uploaded) or remote media (fetched once); frozen media is
    # not there for the legacy routes.
    record = await find_source(rt, _source_request(req))
    # Step 5: quarantined media is gone for clients (or replaced by the configured image).
    if record.quarantined:
        return await quarantine_replacement(rt)
    # Step 6: the headers every answer carries; the content hash is a strong ETag, and a
    # request that has these bytes already gets a 304.
    etag = etag_for(record)
    validators = {"ETag": etag, "Cache-Control": MEDIA_CACHE_CONTROL}
    content_type = served_content_type(record.content_type)
    headers = {**media_headers(content_type, req.file_name or record.upload_name), **validators}
    if (unchanged := not_modified(req.preconditions.if_none_match, headers)) is not None:
        return unchanged
    # Step 7: note the access for retention purges (batched, written off the request path).
    rt.access.record(record.origin, record.media_id)
    # Step 8: a public object URL (S3 publicBaseUrl) is a redirect where redirects are allowed.
    store = rt.datastores.get(record.datastore_id)
    public_url = store.public_url(record.location) if req.allow_redirect else None
    if public_url is not None:
        return Redirect(public_url, validators)
    # Step 9: all the bytes or one range of them (an open-ended one capped at
    # `downloads.defaultRangeChunkSizeBytes`), in bounded memory whatever the size: nginx sends
    # a full body larger than the small-object cache takes when `downloads.accelRedirect` is on;
    # small bodies are read at once (and kept) and sent as one message, larger ones streamed.
    headers["Accept-Ranges"] = "bytes"
    conditions = req.preconditions
    byte_range = requested_range(
        conditions.range, conditions.if_range, etag, record.size_bytes,
        open_ended_max=rt.request_config.downloads.default_range_chunk_size_bytes,
    )
    status, size = 200, record.size_bytes
    small_objects = rt.part(DownloadContext).small_objects
    if byte_range is None:
        # Small bodies stay with the process even under accelRedirect: answering from memory
        # costs less than nginx fetching them again (from S3, a round trip to the object store).
        if not req.head and record.size_bytes > small_objects.max_entry_bytes:
            target = accel_target(rt.config.downloads.accel_redirect, store, record.location,
                                  rt.part(DownloadContext).presigned)
            if target is not None:
                metrics.download_sent(rt, record.origin, size)
                return MediaStream(record, {**headers, "X-Accel-Redirect": target}, size, accel=True)
    else:
        headers.update(range_headers(byte_range, record.size_bytes))
        status, size = 206, byte_range.length
    headers["Content-Length"] = str(size)
    if not req.head:
        whole = small_objects.get(store.id, record.location)
        if whole is not None:
            content = whole if byte_range is None else whole[byte_range.start:byte_range.end + 1]
            metrics.download_sent(rt, record.origin, len(content))
            return MediaStream(record, headers, size, content=content, status=status)
    body = await primed(store.open_stream(record.location, byte_range, STREAM_CHUNK_BYTES))
    if req.head:
        await aclose(body)
        return MediaStream(record, headers, size, status=status)
    if size <= WHOLE_BODY_MAX_BYTES:
        content = b"".join([chunk async for chunk in body])
        if byte_range is None and len(content) == record.size_bytes:
            small_objects.put(store.id, record.location, content)
        metrics.download_sent(rt, record.origin, len(content))
        return MediaStream(record, headers, size, content=content, status=status)
    return MediaStream(record, headers, size, metrics.metered_download(rt, record.origin, body),
                       status=status)


async def aclose(stream: AsyncIterator[bytes]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def quarantine_replacement(rt: Runtime) -> MediaStream:
    """The operator's replacement image (`quarantine.replaceDownloads` + `thumbnailPath`), or 404."""
    config = rt.config.quarantine
    path = Path(config.thumbnail_path) if config.thumbnail_path else None
    if not config.replace_downloads or path is None or not path.is_file():
        raise NotFound()
    content_type = mimetypes.guess_type(path.name)[0] or "image/png"
    headers = media_headers(content_type, path.name)
    size = path.stat().st_size
    headers.update({"Content-Length": str(size), "Cache-Control": "no-store"})
    return MediaStream(None, headers, size, _read_file(path))


async def _read_file(path: Path, chunk_size: int = 65536) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        handle.close()


async def run_federation(rt: Runtime, req: FederationDownloadRequest) -> FederationAnswer:
    """Our own media for another server: `{}` then the bytes (or a `Location`), as multipart."""
    # Steps 1-2: only valid IDs of this homeserver's own media (no remote media, ever), waiting
    # for a pending async upload up to timeout_ms (then 504).
    source = SourceRequest(req.homeserver.name, req.media_id, authenticated_route=True,
                           allow_remote=False, timeout_ms=req.timeout_ms)
    record = await find_source(rt, source)
    # Step 3: quarantined media does not leave the server.
    if record.quarantined:
        raise NotFound()
    # Step 4: note the access, as for clients.
    rt.access.record(record.origin, record.media_id)
    # Step 5: part 2 is a Location for public objects, else the bytes with their headers.
    store = rt.datastores.get(record.datastore_id)
    boundary = new_boundary()
    public_url = store.public_url(record.location)
    if public_url is not None:
        body = write_media_multipart(boundary, {"Location": public_url}, None)
    else:
        content_type = served_content_type(record.content_type)
        part_headers = media_headers(content_type, record.upload_name)
        part_headers = {name: part_headers[name] for name in ("Content-Type", "Content-Disposition")}
        stream = store.open_stream(record.location, None, STREAM_CHUNK_BYTES)
        stream = metrics.metered_download(rt, record.origin, stream)
        body = write_media_multipart(boundary, part_headers, stream)
    return FederationAnswer(multipart_content_type(boundary), body)
