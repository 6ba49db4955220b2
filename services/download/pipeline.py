"""Download pipeline: find the media, decide whether this route may serve it, open its bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.db.repositories.media import MediaRecord, get_media
from shared.ids.media_id import is_valid_media_id, is_valid_server_name
from shared.matrix.disposition import media_headers, served_content_type
from shared.matrix.errors import NotFound
from shared.media.pending import wait_for_pending_media
from shared.runtime import Runtime


@dataclass(frozen=True)
class DownloadRequest:
    server_name: str
    media_id: str
    file_name: str | None
    authenticated_route: bool
    # How long to wait for an async upload that has not arrived yet (None: the spec's default).
    timeout_ms: int | None = None


@dataclass(frozen=True)
class MediaStream:
    record: MediaRecord
    headers: dict[str, str]
    body: AsyncIterator[bytes]


def validate_ids(server_name: str, media_id: str) -> None:
    """The spec's allow-list, checked before any storage or network access."""
    if not is_valid_server_name(server_name) or not is_valid_media_id(media_id):
        raise NotFound("Invalid server name or media ID")


async def find_servable(rt: Runtime, req: DownloadRequest) -> MediaRecord:
    # Step 1: reject IDs outside the spec's allow-list before touching anything.
    validate_ids(req.server_name, req.media_id)
    # Step 2: look the media up (remote media arrives with the federation work).
    async with rt.sessions() as session:
        record = await get_media(session, req.server_name, req.media_id)
    if record is None:
        # Step 2b: created by /create but not uploaded yet: wait for the PUT (504 after timeout_ms).
        record = await wait_for_pending_media(rt, req.server_name, req.media_id, req.timeout_ms)
    if record is None or record.quarantined:
        raise NotFound()
    # Step 3: media uploaded while the legacy endpoints are frozen is served only when authenticated.
    if record.authenticated and not req.authenticated_route:
        raise NotFound()
    return record


async def run(rt: Runtime, req: DownloadRequest) -> MediaStream:
    record = await find_servable(rt, req)
    # Step 4: open the bytes as a stream, in bounded memory whatever the size.
    store = rt.datastores.get(record.datastore_id)
    content_type = served_content_type(record.content_type)
    headers = media_headers(content_type, req.file_name or record.upload_name)
    headers["Content-Length"] = str(record.size_bytes)
    return MediaStream(record, headers, store.open_stream(record.location))
