"""Download pipelines: find the media (fetching remote media once), decide whether this route may
serve it, then answer with its bytes, one range of them, a redirect or a 304.

`run` serves clients (v1 and the legacy routes); `run_federation` serves our own media to other
servers as the spec's two-part `multipart/mixed`.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from services.download.serving import (
    CACHE_CONTROL,
    Preconditions,
    etag_for,
    range_headers,
    requested_range,
)
from shared.config import HomeserverConfig
from shared.db.repositories.media import MediaRecord, get_media
from shared.federation.multipart import (
    multipart_content_type,
    new_boundary,
    write_media_multipart,
)
from shared.ids.media_id import is_valid_media_id, is_valid_server_name
from shared.matrix.disposition import media_headers, served_content_type
from shared.matrix.errors import NotFound
from shared.media.access import record_access
from shared.media.pending import wait_for_pending_media
from shared.media.remote import fetch_remote_media, is_ignored_host
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.web.conditional import etag_matches

STREAM_CHUNK_BYTES = 256 * 1024
"""Bytes per datastore read: a worker-thread hop per chunk costs more than the memory saved by
smaller chunks, and this still bounds each response's buffer to a quarter MiB."""


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


@dataclass(frozen=True)
class MediaStream:
    record: MediaRecord | None  # None for the quarantine replacement image
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    status: int = 200


@dataclass(frozen=True)
class Redirect:
    """307 to where the bytes are public (an S3 `publicBaseUrl`)."""

    location: str
    headers: dict[str, str]


@dataclass(frozen=True)
class NotModified:
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


def validate_ids(server_name: str, media_id: str) -> None:
    """The spec's allow-list, checked before any storage or network access."""
    if not is_valid_server_name(server_name) or not is_valid_media_id(media_id):
        raise NotFound("Invalid server name or media ID")


async def find_local(
    rt: Runtime, server_name: str, media_id: str, timeout_ms: int | None
) -> MediaRecord:
    async with rt.sessions() as session:
        record = await get_media(session, server_name, media_id)
    if record is None:
        # Created by /create but not uploaded yet: wait for the PUT (504 after timeout_ms).
        record = await wait_for_pending_media(rt, server_name, media_id, timeout_ms)
    if record is None:
        raise NotFound()
    return record


async def find_servable(rt: Runtime, req: DownloadRequest) -> MediaRecord:
    # Step 1: reject IDs outside the spec's allow-list before touching anything; our own name
    # in another case (`LOCALHOST`) is ours.
    validate_ids(req.server_name, req.media_id)
    req = replace(req, server_name=rt.canonical_server_name(req.server_name))
    # Step 2: media of ignored hosts is not served.
    if is_ignored_host(rt, req.server_name):
        raise NotFound("Media from this server is not served here")
    # Step 3: our own media (maybe still being uploaded), or remote media (fetched once).
    if rt.is_local_server(req.server_name):
        record = await find_local(rt, req.server_name, req.media_id, req.timeout_ms)
    else:
        # Frozen legacy routes never fill the cache: what they fetched they could not serve.
        frozen = rt.config.repo.freeze_unauthenticated_media and not req.authenticated_route
        record = await fetch_remote_media(
            rt, req.server_name, req.media_id,
            allow_remote=req.allow_remote and not frozen, via=req.via,
        )
    # Step 4: media uploaded while the legacy endpoints are frozen is served only when authenticated.
    if record.authenticated and not req.authenticated_route:
        raise NotFound()
    return record


async def run(rt: Runtime, req: DownloadRequest) -> DownloadResult:
    record = await find_servable(rt, req)
    # Step 5: quarantined media is gone for clients (or replaced by the configured image).
    if record.quarantined:
        return await quarantine_replacement(rt)
    # Step 6: the headers every answer carries; the content hash is a strong ETag.
    etag = etag_for(record)
    validators = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(req.preconditions.if_none_match, etag):
        return NotModified(validators)
    content_type = served_content_type(record.content_type)
    headers = {**media_headers(content_type, req.file_name or record.upload_name), **validators}
    # Step 7: note the access for retention purges (batched, written off the request path).
    record_access(rt, record.origin, record.media_id)
    # Step 8: a public object URL (S3 publicBaseUrl) is a redirect where redirects are allowed.
    store = rt.datastores.get(record.datastore_id)
    public_url = store.public_url(record.location) if req.allow_redirect else None
    if public_url is not None:
        return Redirect(public_url, validators)
    # Step 9: stream all the bytes or one range of them (an open-ended one capped at
    # `downloads.defaultRangeChunkSizeBytes`), in bounded memory whatever the size.
    headers["Accept-Ranges"] = "bytes"
    conditions = req.preconditions
    byte_range = requested_range(
        conditions.range, conditions.if_range, etag, record.size_bytes,
        open_ended_max=rt.config.downloads.default_range_chunk_size_bytes,
    )
    if byte_range is None:
        headers["Content-Length"] = str(record.size_bytes)
        body = store.open_stream(record.location, None, STREAM_CHUNK_BYTES)
        return MediaStream(record, headers, metrics.metered_download(rt, record.origin, body))
    headers.update(range_headers(byte_range, record.size_bytes))
    body = store.open_stream(record.location, byte_range, STREAM_CHUNK_BYTES)
    return MediaStream(record, headers, metrics.metered_download(rt, record.origin, body), status=206)


async def quarantine_replacement(rt: Runtime) -> MediaStream:
    """The operator's replacement image (`quarantine.replaceDownloads` + `thumbnailPath`), or 404."""
    config = rt.config.quarantine
    path = Path(config.thumbnail_path) if config.thumbnail_path else None
    if not config.replace_downloads or path is None or not path.is_file():
        raise NotFound()
    content_type = mimetypes.guess_type(path.name)[0] or "image/png"
    headers = media_headers(content_type, path.name)
    headers.update({"Content-Length": str(path.stat().st_size), "Cache-Control": "no-store"})
    return MediaStream(None, headers, _read_file(path))


async def _read_file(path: Path, chunk_size: int = 65536) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        handle.close()


async def run_federation(rt: Runtime, req: FederationDownloadRequest) -> FederationAnswer:
    """Our own media for another server: `{}` then the bytes (or a `Location`), as multipart."""
    server_name = req.homeserver.name
    # Step 1: only valid IDs of this homeserver's own media; no remote media, ever.
    validate_ids(server_name, req.media_id)
    # Step 2: the record, waiting for a pending async upload up to timeout_ms (then 504).
    record = await find_local(rt, server_name, req.media_id, req.timeout_ms)
    # Step 3: quarantined media does not leave the server.
    if record.quarantined:
        raise NotFound()
    # Step 4: note the access, as for clients.
    record_access(rt, record.origin, record.media_id)
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
