"""What a thumbnail request is answered with: headers plus bytes, a stream, or a redirect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

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
from shared.web.prebuilt import EncodedHeaders, encode_headers

STORED_HEADERS_KEPT = 4096
"""Stored thumbnails whose answer headers are kept built (a few hundred bytes each)."""


@dataclass(frozen=True)
class ThumbnailResponse:
    """Headers plus the bytes (small thumbnails), a stream of them, or a redirect. A stored
    thumbnail's headers come `encoded` as well, built once for every answer with them."""

    headers: Mapping[str, str]
    body: bytes | AsyncIterator[bytes] | None
    location: str | None = None
    encoded: EncodedHeaders | None = None


@lru_cache(maxsize=32)
def _headers_for(content_type: str) -> tuple[tuple[str, str], ...]:
    headers = media_headers(content_type, f"thumbnail.{EXTENSIONS.get(content_type, 'png')}")
    headers["Cache-Control"] = MEDIA_CACHE_CONTROL
    return tuple(headers.items())


def thumbnail_headers(content_type: str) -> dict[str, str]:
    """`inline; filename=thumbnail.<ext>` and the security headers of every media answer."""
    return dict(_headers_for(content_type))


@dataclass(frozen=True)
class StoredHeaders:
    """A stored thumbnail's answer headers, read-only (Content-Length included) and encoded
    for a `PrebuiltResponse` (without it)."""

    fields: Mapping[str, str]
    encoded: EncodedHeaders


def stored_headers(thumb: ThumbnailRecord) -> StoredHeaders:
    """The headers of a stored thumbnail's answer; its content hash is a strong ETag."""
    return _stored_headers(thumb.content_type, thumb.sha256, thumb.size_bytes)


# Content addressed: the same three values always make the same headers, so no invalidation.
@lru_cache(maxsize=STORED_HEADERS_KEPT)
def _stored_headers(content_type: str, sha256: str, size_bytes: int) -> StoredHeaders:
    headers = thumbnail_headers(content_type)
    headers["ETag"] = strong_etag(sha256)
    encoded = encode_headers(headers)  # a response sets the Content-Length of its own body
    headers["Content-Length"] = str(size_bytes)
    return StoredHeaders(MappingProxyType(headers), encoded)


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
    rt: Runtime, ctx: ThumbnailContext, thumb: ThumbnailRecord, headers: StoredHeaders,
    allow_redirect: bool,
) -> ThumbnailResponse:
    """A stored thumbnail: from memory when small and recently served, else from its datastore
    (or a redirect to its public URL where the datastore has one and redirects are allowed)."""
    metrics.thumbnail_served(rt)
    store = rt.datastores.get(thumb.datastore_id)
    url = store.public_url(thumb.location) if allow_redirect else None
    if url is not None:
        return ThumbnailResponse(headers.fields, None, location=url)
    if thumb.size_bytes > ctx.cache.max_entry_bytes:
        return ThumbnailResponse(headers.fields, store.open_stream(thumb.location))
    data = ctx.cache.get(thumb.datastore_id, thumb.location)
    if data is None:
        try:
            data = await _read_all(store.open_stream(thumb.location))
        except ObjectNotFound as exc:  # purged since it was looked up
            raise NotFound() from exc
        ctx.cache.put(thumb.datastore_id, thumb.location, data)
    return ThumbnailResponse(headers.fields, data, encoded=headers.encoded)
