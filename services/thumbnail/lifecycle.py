"""The thumbnail service's start hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.thumbnail.context import context_of
from services.thumbnail.pregenerate import start_pregeneration
from shared.runtime import Runtime


async def start_thumbnailing(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """The worker pool (its workers start on first use) and, when `thumbnails.pregenerate` is on,
    the consumer that makes thumbnails of new uploads ahead of time."""
    context = context_of(rt)
    stop_pregeneration = await start_pregeneration(rt) if rt.config.thumbnails.pregenerate else None

    async def stop() -> None:
        if stop_pregeneration is not None:
            await stop_pregeneration()
        await context.pool.close()  # at shutdown, not only when the runtime closes

    return stop
