"""What a thumbnail request is answered with: headers plus bytes, a stream, or a redirect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache

from services.thumbnail.context import ThumbnailContext
from services.thumbnail.placeholder import CONTENT_TYPE as PLACEHOLDER_TYPE
from services.thumbnail.placeholder import placeholder_png
from services.thumbnail.sizing import Target
from services.thumbnail.worker.jobs import EXTENSIONS
from shared.db.repositories.thumbnails import ThumbnailRecord
from shared.matrix.disposition import media_headers
from shared.matrix.errors import NotFound
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.storage.base import ObjectNotFound
from shared.web.conditional import MEDIA_CACHE_CONTROL, strong_etag


@dataclass(frozen=True)
class ThumbnailResponse:
    """Headers plus the bytes (small thumbnails), a stream of them, or a redirect."""

    headers: dict[str, str]
    body: bytes | AsyncIterator[bytes] | None
    location: str | None = None


@lru_cache(maxsize=32)
def _headers_for(content_type: str) -> tuple[tuple[str, str], ...]:
    headers = media_headers(content_type, f"thumbnail.{EXTENSIONS.get(content_type, 'png')}")
    headers["Cache-Control"] = MEDIA_CACHE_CONTROL
    return tuple(headers.items())


def thumbnail_headers(content_type: str) -> dict[str, str]:
    """`inline; filename=thumbnail.<ext>` and the security headers of every media answer."""
    return dict(_headers_for(content_type))


def stored_headers(thumb: ThumbnailRecord) -> dict[str, str]:
    """The headers of a stored thumbnail's answer; its content hash is a strong ETag."""
    headers = thumbnail_headers(thumb.content_type)
    headers["ETag"] = strong_etag(thumb.sha256)
    return headers


async def placeholder(rt: Runtime, target: Target) -> ThumbnailResponse:
    """The quarantine placeholder at the target size, or 404 when the operator wants none."""
    if not rt.request_config.quarantine.replace_thumbnails:
        raise NotFound()
    data = await asyncio.to_thread(
        placeholder_png, target.width, target.height, rt.request_config.quarantine.thumbnail_path
    )
    headers = thumbnail_headers(PLACEHOLDER_TYPE)
    headers["Content-Length"] = str(len(data))
    return ThumbnailResponse(headers, data)


async def _read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def stored(
    rt: Runtime, ctx: ThumbnailContext, thumb: ThumbnailRecord, headers: dict[str, str],
    allow_redirect: bool,
) -> ThumbnailResponse:
    """A stored thumbnail: from memory when small and recently served, else from its datastore
    (or a redirect to its public URL where the datastore has one and redirects are allowed)."""
    metrics.thumbnail_served(rt)
    store = rt.datastores.get(thumb.datastore_id)
    url = store.public_url(thumb.location) if allow_redirect else None
    if url is not None:
        return ThumbnailResponse(headers, None, location=url)
    headers["Content-Length"] = str(thumb.size_bytes)
    if thumb.size_bytes > ctx.cache.max_entry_bytes:
        return ThumbnailResponse(headers, store.open_stream(thumb.location))
    data = ctx.cache.get(thumb.datastore_id, thumb.location)
    if data is None:
        try:
            data = await _read_all(store.open_stream(thumb.location))
        except ObjectNotFound as exc:  # purged since it was looked up
            raise NotFound() from exc
        ctx.cache.put(thumb.datastore_id, thumb.location, data)
    return ThumbnailResponse(headers, data)
