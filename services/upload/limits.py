"""Upload limits: sizes, content types and per-user quotas (`uploads` section, per homeserver).

Every refusal is a 4xx that says which limit was hit (matrix-media-repo answers some with 500).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase

from shared.config import QuotaUserConfig, UploadsConfig
from shared.db.repositories.quotas import user_usage
from shared.matrix.errors import BadRequest, Forbidden, TooLarge
from shared.media.locks import lock_unless_unavailable
from shared.runtime import Runtime

QUOTA_LOCK_TTL_SECONDS = 60
QUOTA_LOCK_WAIT_SECONDS = 300


def too_large(limit: int) -> TooLarge:
    return TooLarge(f"The upload is larger than the limit of {limit} bytes")


def too_small(limit: int) -> BadRequest:
    return BadRequest(f"The upload is smaller than the minimum of {limit} bytes")


def media_type(content_type: str) -> str:
    """`Image/PNG; charset=x` -> `image/png`: what type patterns are matched against."""
    return content_type.split(";", 1)[0].strip().lower()


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


def quota_for(limits: UploadsConfig, user_id: str) -> QuotaUserConfig | None:
    """The first `uploads.quotas.users[]` entry whose glob matches the user, if quotas are on."""
    if not limits.quotas.enabled:
        return None
    for quota in limits.quotas.users:
        if fnmatchcase(user_id, quota.glob):
            return quota
    return None


def _quota_error(quota: QuotaUserConfig, key: str, limit: int, detail: str) -> Forbidden:
    return Forbidden(
        f"Upload quota exceeded: {detail} (uploads.quotas {key} {limit} for users matching "
        f"{quota.glob!r})"
    )


async def check_quota(rt: Runtime, quota: QuotaUserConfig | None, user_id: str, new_bytes: int) -> None:
    """403 when storing `new_bytes` more would break the user's file or byte quota."""
    if quota is None or not (quota.max_files or quota.max_bytes):
        return
    async with rt.sessions() as session:
        usage = await user_usage(session, user_id)
    if quota.max_files and usage.files >= quota.max_files:
        raise _quota_error(quota, "maxFiles", quota.max_files, f"{usage.files} files uploaded")
    if quota.max_bytes and usage.bytes + new_bytes > quota.max_bytes:
        detail = f"{usage.bytes} bytes uploaded, this upload is {new_bytes}"
        raise _quota_error(quota, "maxBytes", quota.max_bytes, detail)


def check_pending_quota(quota: QuotaUserConfig | None, pending: int) -> None:
    """403 when the user already has their quota's number of pending async uploads."""
    if quota is not None and quota.max_pending and pending >= quota.max_pending:
        detail = f"{pending} async uploads are waiting for content"
        raise _quota_error(quota, "maxPending", quota.max_pending, detail)


@asynccontextmanager
async def quota_guard(
    rt: Runtime, quota: QuotaUserConfig | None, user_id: str, new_bytes: int
) -> AsyncIterator[None]:
    """Check the quota and keep the user's other uploads from recording until this one has.

    Without the per-user lock two uploads landing together on two machines could both pass the
    check and together go over the quota.
    """
    if quota is None or not (quota.max_files or quota.max_bytes):
        yield
        return
    async with lock_unless_unavailable(
        rt.coordinator, f"quota:{user_id}", QUOTA_LOCK_TTL_SECONDS, QUOTA_LOCK_WAIT_SECONDS
    ):
        await check_quota(rt, quota, user_id, new_bytes)
        yield
