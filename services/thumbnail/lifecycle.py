"""The thumbnail service's start hook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from services.thumbnail.context import AnswerCache, context_of
from services.thumbnail.pregenerate import start_pregeneration
from shared.coordination.base import Subscription
from shared.media.changes import CHANNEL, media_changes
from shared.media.locks import BACKEND_ERRORS
from shared.runtime import Runtime

log = logging.getLogger(__name__)

Stop = Callable[[], Awaitable[None]]


async def _forget_changed(subscription: Subscription, answers: AnswerCache) -> None:
    try:
        async for origin, media_id in media_changes(subscription):
            answers.forget((origin, media_id))
    finally:
        answers.enabled = False  # no longer hearing changes: stop answering from memory


async def _listen_for_changes(rt: Runtime, answers: AnswerCache) -> Stop | None:
    """Answer repeated requests from memory only while changes to media are being heard."""
    try:
        subscription = await rt.coordinator.subscribe(CHANNEL)
    except (*BACKEND_ERRORS, TimeoutError) as exc:
        log.warning("not listening for media changes, every thumbnail request reads the "
                    "database: %r", exc)
        return None
    task = asyncio.create_task(_forget_changed(subscription, answers), name="thumbnail-changes")
    answers.enabled = True

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await subscription.close()

    return stop


async def start_thumbnailing(rt: Runtime) -> Stop:
    """The worker pool (its workers start on first use), the listener that keeps answers fresh
    and, when `thumbnails.pregenerate` is on, the consumer that makes thumbnails of new uploads
    ahead of time."""
    context = context_of(rt)
    stops = [await _listen_for_changes(rt, context.answers)]
    if rt.config.thumbnails.pregenerate:
        stops.append(await start_pregeneration(rt))

    async def stop() -> None:
        for each in reversed(stops):
            if each is not None:
                await each()
        await context.pool.close()  # at shutdown, not only when the runtime closes

    return stop
