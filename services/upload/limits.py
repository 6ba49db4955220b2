"""Upload limits: sizes and content types (`uploads` section, per homeserver). Quotas are
`shared.media.quota`: every writer of local media is held to them, not only uploads.

Every refusal is a 4xx that says which limit was hit (matrix-media-repo answers some with 500).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from shared.config import UploadsConfig
from shared.matrix.disposition import media_type
from shared.matrix.errors import BadRequest, Forbidden, TooLarge


def too_large(limit: int) -> TooLarge:
    return TooLarge(f"The upload is larger than the limit of {limit} bytes")


def too_small(limit: int) -> BadRequest:
    return BadRequest(f"The upload is smaller than the minimum of {limit} bytes")


def check_content_type(limits: UploadsConfig, content_type: str) -> None:
    """403 when the type is denied, or not allowed (glob patterns such as `image/*`)."""
    kind = media_type(content_type)
    if any(fnmatchcase(kind, pattern.lower()) for pattern in limits.denied_types):
        raise Forbidden(f"Uploads of type {kind} are not allowed on this server")
    if not any(fnmatchcase(kind, pattern.lower()) for pattern in limits.allowed_types):
        raise Forbidden(f"Uploads of type {kind} are not allowed on this server")


def check_declared_size(limits: UploadsConfig, declared_length: int | None) -> None:
    """Refuse a Content-Length outside the limits before a byte of the body is read."""
    if declared_length is None:
        return
    if limits.max_bytes and declared_length > limits.max_bytes:
        raise too_large(limits.max_bytes)
    if declared_length < limits.min_bytes:
        raise too_small(limits.min_bytes)


def check_final_size(limits: UploadsConfig, size: int) -> None:
    """The minimum, once the whole body is in (the maximum is enforced while streaming)."""
    if size < limits.min_bytes:
        raise too_small(limits.min_bytes)
