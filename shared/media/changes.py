"""Telling every process that a media item changed (quarantined, released, purged).

Services that keep short-lived per-process answers about media (the thumbnail service keeps
which stored thumbnail answers which request) listen here and forget that media's entries at
once. Pub/sub is fire-and-forget, so listeners still expire their entries after a few seconds on
their own; a lost message only means the change takes that long to show.
"""

from __future__ import annotations

import logging

from shared.coordination.base import Coordinator, CoordinatorUnavailable

log = logging.getLogger(__name__)

CHANNEL = "media-changed"
_SEPARATOR = "/"


async def announce_media_changed(coordinator: Coordinator, origin: str, media_id: str) -> None:
    """Publish that `mxc://origin/media_id` changed. Never raises: listeners also expire."""
    try:
        await coordinator.publish(CHANNEL, f"{origin}{_SEPARATOR}{media_id}".encode())
    except CoordinatorUnavailable as exc:
        log.warning("could not announce a change of mxc://%s/%s: %r", origin, media_id, exc)


def parse_change(message: bytes) -> tuple[str, str] | None:
    """(origin, media_id) of a message on `CHANNEL`, or None for a malformed one."""
    origin, _, media_id = message.decode(errors="replace").rpartition(_SEPARATOR)
    return (origin, media_id) if origin and media_id else None
