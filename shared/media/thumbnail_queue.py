"""The queue of new uploads whose thumbnails should be made ahead of time (`thumbnails.pregenerate`).

The upload service puts, the thumbnail service consumes, and neither imports the other. The queue
is a `shared.coordination.queue.WorkQueue` (a Redis stream in a cluster, so each upload is handled
by one thumbnail process), held by the runtime as `Runtime.thumbnail_queue`. Pre-generation is an
optimisation: an entry that is dropped only means a thumbnail is made on first request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.db.repositories.media import MediaRecord

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger(__name__)

STREAM = "mmr:thumbnails:pregenerate"
GROUP = "thumbnailers"


@dataclass(frozen=True)
class PregenerationRequest:
    origin: str
    media_id: str


async def request_pregeneration(rt: Runtime, record: MediaRecord) -> None:
    """Queue `record` for thumbnails ahead of time, when configured. Never fails the caller: a
    missed entry only means the thumbnail is made on its first request."""
    if not rt.config.thumbnails.pregenerate:
        return
    try:
        await rt.thumbnail_queue.put({"origin": record.origin, "media_id": record.media_id})
    except Exception as exc:
        log.warning("could not queue thumbnails of %s: %r", record.mxc, exc)


async def pregeneration_requests(rt: Runtime, consumer: str) -> AsyncIterator[PregenerationRequest]:
    """What the thumbnail service should make, one request at a time (see `WorkQueue.consume`)."""
    async for entry in rt.thumbnail_queue.consume(consumer):
        yield PregenerationRequest(entry["origin"], entry["media_id"])
