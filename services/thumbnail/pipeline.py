"""Thumbnail pipeline: find the source, snap the size, serve the stored thumbnail or make it once.

No FastAPI here: routes parse HTTP and call `run` with plain values. The client, legacy and
federation routes all come through `run`, so they answer with the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.thumbnail.context import ThumbnailContext, context_of
from services.thumbnail.formats import normalise, thumbnailable
from services.thumbnail.generation import GenerationRequest, stored_or_generated
from services.thumbnail.jobs import EXTENSIONS, SourceTooLarge, ThumbnailFailure
from services.thumbnail.placeholder import CONTENT_TYPE as PLACEHOLDER_TYPE
from services.thumbnail.placeholder import placeholder_png
from services.thumbnail.sizing import Method, Target, snap
from services.thumbnail.workers import (
    WorkerCrashed,
    WorkerFailure,
    WorkerOutOfMemory,
    WorkerOverCpu,
    WorkerTimedOut,
)
from shared.config import ThumbnailsConfig
from shared.db.repositories.media import MediaRecord
from shared.db.repositories.thumbnails import ThumbnailRecord
from shared.ids.media_id import is_valid_media_id, is_valid_server_name
from shared.matrix.disposition import media_headers
from shared.matrix.errors import BadRequest, MatrixError, NotFound, TooLarge
from shared.media.pending import wait_for_pending_media
from shared.media.remote import fetch_remote_media
from shared.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThumbnailRequest:
    server_name: str
    media_id: str
    width: int
    height: int
    method: Method
    animated: bool | None
    timeout_ms: int | None
    allow_remote: bool
    allow_redirect: bool
    # The deprecated unauthenticated routes may not serve media uploaded while frozen.
    authenticated_route: bool


@dataclass(frozen=True)
class ThumbnailAnswer:
    """Headers plus the bytes (small thumbnails), a stream of them, or a redirect."""

    headers: dict[str, str]
    body: bytes | AsyncIterator[bytes] | None
    location: str | None = None


async def _find_source(rt: Runtime, req: ThumbnailRequest) -> tuple[MediaRecord, bool]:
    """(the source's record, whether it is remote)."""
    if rt.is_local_server(req.server_name):
        record = await wait_for_pending_media(rt, req.server_name, req.media_id, req.timeout_ms)
        if record is None:
            raise NotFound()
        return record, False
    remote = await fetch_remote_media(
        rt, req.server_name, req.media_id, allow_remote=req.allow_remote
    )
    return remote, True


def _wants_animation(config: ThumbnailsConfig, asked: bool | None) -> bool:
    if not config.allow_animated:
        return False
    return config.default_animated if asked is None else asked


def _headers(content_type: str) -> dict[str, str]:
    return media_headers(content_type, f"thumbnail.{EXTENSIONS.get(content_type, 'png')}")


async def _placeholder(rt: Runtime, target: Target) -> ThumbnailAnswer:
    if not rt.config.quarantine.replace_thumbnails:
        raise NotFound()
    data = await asyncio.to_thread(
        placeholder_png, target.width, target.height, rt.config.quarantine.thumbnail_path
    )
    headers = _headers(PLACEHOLDER_TYPE)
    headers["Content-Length"] = str(len(data))
    return ThumbnailAnswer(headers, data)


def _as_matrix_error(exc: ThumbnailFailure | WorkerFailure, remote: bool) -> MatrixError:
    """The spec's answers: 413 M_TOO_LARGE (502 for remote media) for what is too big or too
    costly to thumbnail, 400 M_UNKNOWN for what cannot be thumbnailed."""
    too_costly = (SourceTooLarge, WorkerOutOfMemory, WorkerOverCpu, WorkerTimedOut)
    if isinstance(exc, too_costly):
        return TooLarge(str(exc), status=502 if remote else 413)
    if isinstance(exc, ThumbnailFailure | WorkerCrashed):
        return BadRequest(f"The media cannot be thumbnailed: {exc}")
    log.error("thumbnail job failed unexpectedly: %s", exc)
    return MatrixError(500, "M_UNKNOWN", "The thumbnail could not be made")


async def _thumbnail(
    rt: Runtime, ctx: ThumbnailContext, gen: GenerationRequest, remote: bool
) -> ThumbnailRecord:
    try:
        return await stored_or_generated(rt, ctx, gen)
    except (ThumbnailFailure, WorkerFailure) as exc:
        raise _as_matrix_error(exc, remote) from exc


async def _read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def _answer(
    rt: Runtime, ctx: ThumbnailContext, thumb: ThumbnailRecord, allow_redirect: bool
) -> ThumbnailAnswer:
    headers = _headers(thumb.content_type)
    store = rt.datastores.get(thumb.datastore_id)
    url = store.public_url(thumb.location) if allow_redirect else None
    if url is not None:
        return ThumbnailAnswer(headers, None, location=url)
    headers["Content-Length"] = str(thumb.size_bytes)
    if thumb.size_bytes > ctx.cache.max_entry_bytes:
        return ThumbnailAnswer(headers, store.open_stream(thumb.location))
    data = ctx.cache.get(thumb.datastore_id, thumb.location)
    if data is None:
        data = await _read_all(store.open_stream(thumb.location))
        ctx.cache.put(thumb.datastore_id, thumb.location, data)
    return ThumbnailAnswer(headers, data)


async def run(rt: Runtime, req: ThumbnailRequest) -> ThumbnailAnswer:
    config = rt.config.thumbnails
    # Step 1: IDs outside the spec's allow-list name no media, before any storage or network use.
    if not is_valid_server_name(req.server_name) or not is_valid_media_id(req.media_id):
        raise NotFound("Invalid server name or media ID")
    # Step 2: the source: local (waiting up to timeout_ms for an async upload) or remote (cached).
    record, remote = await _find_source(rt, req)
    # Step 3: media uploaded while the legacy routes are frozen does not exist for them.
    if record.authenticated and not req.authenticated_route:
        raise NotFound()
    # Step 4: snap the request to the size thumbnails are made and stored at.
    target = snap(req.width, req.height, req.method, config.sizes, config.dynamic_sizing)
    # Step 5: quarantined media gets the placeholder image (or nothing).
    if record.quarantined:
        return await _placeholder(rt, target)
    # Step 6: only types the operator lists and a decoder handles (never SVG).
    content_type = normalise(record.content_type)
    if not thumbnailable(content_type, config.types):
        raise BadRequest(f"Thumbnails of {content_type or 'this media'} are not supported")
    # Step 7: the stored thumbnail, generated once cluster-wide when missing.
    ctx = context_of(rt)
    gen = GenerationRequest(record, target, _wants_animation(config, req.animated))
    thumb = await _thumbnail(rt, ctx, gen, remote)
    # Step 8: its bytes, or a redirect to them where the datastore has a public URL.
    return await _answer(rt, ctx, thumb, req.allow_redirect)
