"""Waiting for async uploads: a download or thumbnail of a created-but-empty ID waits for its PUT.

The PUT, on whichever machine it lands, commits the media row and then publishes on the media's
own channel; waiters subscribe before their last database look, so a PUT that completes between
the look and the wait still wakes them. Pub/sub is fire-and-forget (a Redis reconnect can lose a
message), so waiters also re-read the database every few seconds, and poll faster when pub/sub
is unavailable altogether.
"""

from __future__ import annotations

import asyncio
import logging
import time

from shared.coordination.base import Coordinator, CoordinatorUnavailable, Subscription
from shared.db.repositories.media import MediaRecord, get_media
from shared.db.repositories.reservations import get_reservation
from shared.matrix.errors import NotYetUploaded
from shared.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000
RECHECK_SECONDS = 5.0
"""Safety-net database look while subscribed, in case a notification was lost."""
POLL_SECONDS = 0.5
"""Database polling interval when pub/sub cannot be used (as Synapse always does)."""


def wait_seconds(timeout_ms: int | None) -> float:
    """The spec's `timeout_ms`: default 20 s, capped at 60 s, never negative."""
    if timeout_ms is None:
        timeout_ms = DEFAULT_TIMEOUT_MS
    return min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000


def uploaded_channel(origin: str, media_id: str) -> str:
    return f"media-uploaded:{origin}/{media_id}"


async def announce_uploaded(coordinator: Coordinator, origin: str, media_id: str) -> None:
    """Wake everyone waiting for this media. Never fails the upload: waiters also poll."""
    try:
        await coordinator.publish(uploaded_channel(origin, media_id), f"mxc://{origin}/{media_id}".encode())
    except CoordinatorUnavailable as exc:
        log.warning("could not announce upload of mxc://%s/%s: %r", origin, media_id, exc)


async def _pending_until(rt: Runtime, origin: str, media_id: str) -> tuple[MediaRecord | None, float]:
    """(the record if it exists now, else None; monotonic deadline of its reservation or 0)."""
    async with rt.sessions() as session:
        record = await get_media(session, origin, media_id)
        if record is not None:
            return record, 0.0
        reservation = await get_reservation(session, origin, media_id)
    now_ms = int(time.time() * 1000)
    if reservation is None or reservation.expired(now_ms):
        return None, 0.0
    return None, time.monotonic() + (reservation.expires_ts - now_ms) / 1000


async def _subscribe(coordinator: Coordinator, channel: str) -> Subscription | None:
    try:
        return await coordinator.subscribe(channel)
    except CoordinatorUnavailable as exc:
        log.warning("cannot subscribe to %s, polling instead: %r", channel, exc)
        return None


async def _wake(subscription: Subscription | None, seconds: float) -> None:
    """Return after a notification, or after `seconds`, whichever comes first."""
    if subscription is None:
        await asyncio.sleep(seconds)
        return
    try:
        await subscription.get(seconds)
    except CoordinatorUnavailable as exc:
        log.warning("lost the upload subscription, polling instead: %r", exc)
        await asyncio.sleep(min(seconds, POLL_SECONDS))


async def wait_for_pending_media(
    rt: Runtime, origin: str, media_id: str, timeout_ms: int | None
) -> MediaRecord | None:
    """The record of `mxc://origin/media_id` once its async upload completes.

    Returns None when nothing is pending under that ID (never created, or the reservation
    expired): the caller answers 404. Raises `NotYetUploaded` (504) when it is still pending
    after `timeout_ms` (default 20 s, at most 60 s).
    """
    record, reserved_until = await _pending_until(rt, origin, media_id)
    if record is not None or not reserved_until:
        return record
    if wait_seconds(timeout_ms) == 0:
        raise NotYetUploaded()
    deadline = min(time.monotonic() + wait_seconds(timeout_ms), reserved_until)
    subscription = await _subscribe(rt.coordinator, uploaded_channel(origin, media_id))
    interval = RECHECK_SECONDS if subscription is not None else POLL_SECONDS
    try:
        while True:
            # Looked at after subscribing, so a PUT finishing in between is not missed.
            record, reserved_until = await _pending_until(rt, origin, media_id)
            if record is not None or not reserved_until:
                return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotYetUploaded()
            await _wake(subscription, min(remaining, interval))
    finally:
        if subscription is not None:
            await subscription.close()
