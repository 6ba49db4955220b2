"""The thumbnail service's start hook."""

from __future__ import annotations

from services.thumbnail.context import ThumbnailContext
from services.thumbnail.pregenerate import start_pregeneration
from shared.runtime import Runtime
from shared.stopping import Stop


async def start_thumbnailing(rt: Runtime) -> Stop:
    """The worker pool (its workers start on first use), the listener that lets recent lookups
    be remembered and, when `thumbnails.pregenerate` is on, the consumer that makes thumbnails
    of new uploads ahead of time."""
    context = rt.part(ThumbnailContext)
    await context.lookups.listen(rt.coordinator)
    stop_pregeneration = await start_pregeneration(rt) if rt.config.thumbnails.pregenerate else None

    async def stop() -> None:
        if stop_pregeneration is not None:
            await stop_pregeneration()
        await context.close()  # at shutdown, not only when the runtime closes

    return stop
