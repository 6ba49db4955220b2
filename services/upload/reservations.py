"""Async uploads (Matrix 1.7, MSC2246): reserving IDs with `/create`, and claiming one for a PUT.

Both are decided before any body is read. A claim is a cluster-wide lock on the media ID taken
without waiting: a second PUT to the same ID, on any machine, gets 409 straight away instead of
uploading its body for nothing. The media row's primary key stays the final arbiter (a PUT that
somehow gets past the lock still loses with 409 when it records).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from shared.config import UploadsConfig
from shared.coordination.base import LockNotAcquired
from shared.db.repositories.media import get_media
from shared.db.repositories.reservations import (
    Reservation,
    ReservationTaken,
    get_reservation,
    insert_reservation,
    pending_for_user,
)
from shared.ids.media_id import is_valid_media_id, with_new_media_id
from shared.matrix.errors import CannotOverwrite, Forbidden, LimitExceeded, NotFound
from shared.media.locks import lock_unless_unavailable
from shared.media.quota import check_pending_quota, quota_for
from shared.runtime import Runtime

CREATE_LOCK_TTL_SECONDS = 30
CREATE_LOCK_WAIT_SECONDS = 30
CLAIM_TTL_SECONDS = 60
"""Renewed while the upload runs; a crashed machine's claim frees up after this."""


@dataclass(frozen=True)
class Created:
    content_uri: str
    unused_expires_at: int


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _check_pending(rt: Runtime, limits: UploadsConfig, user_id: str) -> None:
    """Quota `maxPending` (403) and `uploads.maxPending` (429, retry when the first one expires)."""
    now = _now_ms()
    async with rt.sessions() as session:
        pending, first_expiry = await pending_for_user(session, user_id, now)
    check_pending_quota(quota_for(limits, user_id), pending)
    if limits.max_pending and pending >= limits.max_pending:
        retry_after = ((first_expiry or now) - now) / 1000
        raise LimitExceeded(
            max(retry_after, 1.0),
            f"Too many pending async uploads ({pending}, uploads.maxPending is "
            f"{limits.max_pending}): upload to or let expire one of them first",
        )


async def _insert_new(rt: Runtime, origin: str, user_id: str, max_age_seconds: int) -> Reservation:
    async def insert(media_id: str) -> Reservation:
        now = _now_ms()
        reservation = Reservation(origin, media_id, user_id, now, now + max_age_seconds * 1000)
        async with rt.sessions() as session:
            await insert_reservation(session, reservation)
            await session.commit()
        return reservation

    return await with_new_media_id(rt.ids, insert, ReservationTaken)


async def create(rt: Runtime, origin: str, user_id: str) -> Created:
    """`POST /_matrix/media/v1/create`: reserve an MXC for the user to PUT content into later."""
    limits = rt.config.uploads_for(origin)
    async with AsyncExitStack() as stack:
        # Step 1: one create per user at a time cluster-wide, so the pending count holds.
        try:
            await stack.enter_async_context(lock_unless_unavailable(
                rt.coordinator, f"create:{user_id}", CREATE_LOCK_TTL_SECONDS,
                CREATE_LOCK_WAIT_SECONDS,
            ))
        except LockNotAcquired as exc:
            raise LimitExceeded(1.0, "Too many concurrent /create requests") from exc
        # Step 2: pending limits (per-user quota, then the server-wide maximum).
        await _check_pending(rt, limits, user_id)
        # Step 3: reserve a fresh ID until `uploads.maxAgeSeconds` from now.
        reservation = await _insert_new(rt, origin, user_id, limits.max_age_seconds)
    return Created(reservation.mxc, reservation.expires_ts)


async def _check_claimable(rt: Runtime, origin: str, media_id: str, user_id: str) -> None:
    """The spec's answers for a PUT, in Synapse's order: 404, 403, 409, 404 (expired)."""
    async with rt.sessions() as session:
        record = await get_media(session, origin, media_id)
        reservation = None if record else await get_reservation(session, origin, media_id)
    if record is not None:
        if record.user_id != user_id:
            raise Forbidden("This media ID belongs to another user")
        raise CannotOverwrite()
    if reservation is None:
        raise NotFound("This media ID was not created by /create, or has expired")
    if reservation.user_id != user_id:
        raise Forbidden("This media ID belongs to another user")
    if reservation.expired(_now_ms()):
        raise NotFound("This media ID has expired; create a new one")


@asynccontextmanager
async def claim(
    rt: Runtime, host_server: str, origin: str, media_id: str, user_id: str
) -> AsyncIterator[None]:
    """Hold the right to fill `mxc://origin/media_id` for the duration of the upload.

    Raises 404 (not the requested homeserver's, never created, expired), 403 (another user's),
    409 (has content, or another PUT to it is in progress anywhere in the cluster).
    """
    if origin != host_server or not is_valid_media_id(media_id):
        raise NotFound("This server did not create that media ID")
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(lock_unless_unavailable(
                rt.coordinator, f"async-upload:{origin}/{media_id}", CLAIM_TTL_SECONDS, 0
            ))
        except LockNotAcquired as exc:
            raise CannotOverwrite("Another upload to this media ID is in progress") from exc
        await _check_claimable(rt, origin, media_id, user_id)
        yield
