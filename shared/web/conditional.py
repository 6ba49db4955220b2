"""Conditional requests on immutable content: a content hash is a strong ETag, forever."""

from __future__ import annotations


def strong_etag(sha256: str) -> str:
    return f'"{sha256}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """`If-None-Match` semantics: `*` or any listed tag (weak comparison) matches."""
    if not header:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


NOT_MODIFIED_DROPS = frozenset({"content-length", "content-type", "content-disposition"})


def not_modified_headers(headers: dict[str, str]) -> dict[str, str]:
    """What a 304 repeats of the 200's headers: validators and caching, not the body's."""
    return {name: value for name, value in headers.items() if name.lower() not in NOT_MODIFIED_DROPS}
