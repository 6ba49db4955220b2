"""Making the configured sizes of new uploads in the background (`thumbnails.pregenerate`).

The consumer runs in the thumbnail service (in the embedded default, in the one process) and
goes through the same once-per-cluster path as requests, so a request arriving while its size is
being pre-generated waits for that work instead of repeating it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from services.thumbnail.context import ThumbnailContext
from services.thumbnail.generate import GenerationRequest, stored_or_generated
from services.thumbnail.sizing import snap
from services.thumbnail.worker.formats import thumbnailable
from services.thumbnail.worker.jobs import ThumbnailFailure
from services.thumbnail.worker.pool import WorkerFailure
from shared.db.repositories.media import get_media
from shared.matrix.disposition import media_type
from shared.media.thumbnail_queue import PregenerationRequest, pregeneration_requests
from shared.runtime import Runtime
from shared.stopping import Stop, stopper

log = logging.getLogger(__name__)


async def pregenerate(rt: Runtime, request: PregenerationRequest) -> int:
    """Make every configured size of one media item; returns how many are now stored."""
    config = rt.config.thumbnails
    async with rt.sessions() as session:
        record = await get_media(session, request.origin, request.media_id)
    if record is None or record.quarantined:
        return 0
    if not thumbnailable(media_type(record.content_type), config.types):
        return 0
    ctx = rt.part(ThumbnailContext)
    made = 0
    for size in config.sizes:
        target = snap(size.width, size.height, size.method or "scale", config.sizes,
                      config.dynamic_sizing)
        try:
            await stored_or_generated(rt, ctx, GenerationRequest(record, target, animated=False))
        except (ThumbnailFailure, WorkerFailure) as exc:
            # The same source fails the same way at every size.
            log.info("no thumbnails for %s: %s", record.mxc, exc)
            return made
        made += 1
    return made


async def _consume(rt: Runtime) -> None:
    consumer = f"machine-{rt.machine_id}-{uuid.uuid4().hex[:8]}"
    async for request in pregeneration_requests(rt, consumer):
        try:
            await pregenerate(rt, request)
        except Exception:
            log.exception("pre-generating thumbnails of mxc://%s/%s failed",
                          request.origin, request.media_id)


async def start_pregeneration(rt: Runtime) -> Stop:
    return stopper(asyncio.create_task(_consume(rt), name="thumbnail-pregeneration"))
