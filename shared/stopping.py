"""Stopping a background task: cancel it and wait until it has finished cleaning up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

Stop = Callable[[], Awaitable[None]]


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def stopper(task: asyncio.Task[Any]) -> Stop:
    """The `Stop` a start hook returns for its task."""

    async def stop() -> None:
        await cancel_and_wait(task)

    return stop
