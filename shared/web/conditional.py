"""Conditional requests on immutable content, for downloads and thumbnails alike: a content hash
is a strong ETag, forever, and an `If-None-Match` naming it is answered 304 before any byte is
read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MEDIA_CACHE_CONTROL = "private, max-age=259200"
"""Three days, as matrix-media-repo sends: media never changes, but it can be quarantined, so a
shared cache must not keep it and a client should ask again after a while."""

NOT_MODIFIED_DROPS = frozenset({"content-length", "content-type", "content-disposition"})


@dataclass(frozen=True)
class NotModified:
    """A 304: the headers of the 200 it stands for, less those that describe a body."""

    headers: dict[str, str]


def strong_etag(sha256: str) -> str:
    return f'"{sha256}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """`If-None-Match` semantics: `*` or any listed tag (weak comparison) matches."""
    if not header:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def not_modified(if_none_match: str | None, headers: Mapping[str, str]) -> NotModified | None:
    """The 304 for a request whose `If-None-Match` names the `ETag` in `headers`, else None."""
    etag = headers.get("ETag")
    if etag is None or not etag_matches(if_none_match, etag):
        return None
    return NotModified({k: v for k, v in headers.items() if k.lower() not in NOT_MODIFIED_DROPS})
