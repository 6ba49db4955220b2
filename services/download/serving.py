"""HTTP semantics of serving immutable media: single byte ranges and 416 (ETags and 304 are
`shared.web.conditional`, shared with thumbnails).

Pure functions over header values, so the pipeline reads as steps and these rules as rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.db.repositories.media import MediaRecord
from shared.matrix.errors import MatrixError
from shared.storage.base import ByteRange
from shared.web.conditional import strong_etag

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Preconditions:
    """The request headers that shape the answer: `Range`, `If-Range`, `If-None-Match`."""

    range: str | None = None
    if_range: str | None = None
    if_none_match: str | None = None


class RangeNotSatisfiable(MatrixError):
    def __init__(self, size: int) -> None:
        super().__init__(
            416, "M_UNKNOWN", "The requested range is not satisfiable",
            headers={"Content-Range": f"bytes */{size}"},
        )


def etag_for(record: MediaRecord) -> str:
    """Media is immutable, so its content hash is a strong validator."""
    return strong_etag(record.sha256)


def requested_range(
    range_header: str | None, if_range: str | None, etag: str, size: int,
    open_ended_max: int | None = None,
) -> ByteRange | None:
    """The one byte range to serve, or None to serve everything.

    Malformed, multi-range and stale (`If-Range` not our ETag) requests get the whole body, as
    RFC 9110 allows; a well-formed range that starts past the end raises `RangeNotSatisfiable`.
    An open-ended `bytes=N-` gets at most `open_ended_max` bytes (matrix-media-repo's
    `defaultRangeChunkSizeBytes`): a player seeking in a long video asks for the rest of the
    file, but only reads a little of it before seeking again.
    """
    if not range_header or (if_range is not None and if_range.strip() != etag):
        return None
    match = _RANGE.match(range_header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        # `bytes=-N`: the last N bytes.
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last:
        end = int(last)
    elif open_ended_max is not None:
        end = start + open_ended_max - 1
    else:
        end = size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(end, size - 1))


def range_headers(byte_range: ByteRange, size: int) -> dict[str, str]:
    return {
        "Content-Range": f"bytes {byte_range.start}-{byte_range.end}/{size}",
        "Content-Length": str(byte_range.length),
    }
