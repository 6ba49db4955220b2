"""Per-user upload quotas (`uploads.quotas`, per homeserver): what counts, and how it is held.

Every local media row a user owns counts (uploads and the URL preview images stored for them),
deduplicated or not, as matrix-media-repo counts them. The upload service refuses early from a
declared size; the writer (`shared.media.store`) checks again under a per-user lock while it
records, so nothing that writes local media can go over a quota.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase

from shared.config import QuotaUserConfig, UploadsConfig
from shared.db.repositories.quotas import user_usage
from shared.matrix.errors import Forbidden
from shared.media.locks import lock_unless_unavailable
from shared.runtime import Runtime

QUOTA_LOCK_TTL_SECONDS = 60
QUOTA_LOCK_WAIT_SECONDS = 300


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


def _limits_stored(quota: QuotaUserConfig | None) -> bool:
    return quota is not None and bool(quota.max_files or quota.max_bytes)


async def check_quota(rt: Runtime, quota: QuotaUserConfig | None, user_id: str, new_bytes: int) -> None:
    """403 when storing `new_bytes` more would break the user's file or byte quota."""
    if quota is None or not _limits_stored(quota):
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
async def quota_held(rt: Runtime, origin: str, user_id: str, new_bytes: int) -> AsyncIterator[None]:
    """Check `user_id`'s quota on `origin` and keep their other writes from recording until this
    one has.

    Without the per-user lock two uploads landing together on two machines could both pass the
    check and together go over the quota.
    """
    quota = quota_for(rt.config.uploads_for(origin), user_id)
    if not _limits_stored(quota):
        yield
        return
    async with lock_unless_unavailable(
        rt.coordinator, f"quota:{user_id}", QUOTA_LOCK_TTL_SECONDS, QUOTA_LOCK_WAIT_SECONDS
    ):
        await check_quota(rt, quota, user_id, new_bytes)
        yield
