"""The thumbnail service's start hook."""

from __future__ import annotations

import logging

from services.thumbnail.context import ThumbnailContext
from services.thumbnail.pregenerate import start_pregeneration
from shared.runtime import Runtime
from shared.stopping import Stop

log = logging.getLogger(__name__)


async def start_thumbnailing(rt: Runtime) -> Stop:
    """The worker pool, started and warmed now (so the first thumbnail after a start does not
    wait for processes and imports), the listener that lets recent lookups be remembered and,
    when `thumbnails.pregenerate` is on, the consumer that makes thumbnails of new uploads ahead
    of time."""
    context = rt.part(ThumbnailContext)
    try:
        await context.pool.start()
    except Exception as exc:
        # Not fatal: the pool starts workers on first use again, and that use reports the error.
        log.warning("could not start the thumbnail workers ahead of use: %r", exc)
    await context.lookups.listen(rt.coordinator)
    stop_pregeneration = await start_pregeneration(rt) if rt.config.thumbnails.pregenerate else None

    async def stop() -> None:
        if stop_pregeneration is not None:
            await stop_pregeneration()
        await context.close()  # at shutdown, not only when the runtime closes

    return stop
