"""One long-lived subscription behind a per-process cache.

Per-process caches (media records, access tokens) may only remember while they hear the
announcements that invalidate them: `ChannelListener` keeps one subscription open, hands every
message to the cache, and tells it when the subscription ends (Redis lost) so it forgets
everything. After a failure it waits `retry_seconds` before subscribing again, so an outage costs
lookups a database read each, not a Redis connect attempt each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from shared.coordination.base import Coordinator, CoordinatorUnavailable, Subscription
from shared.stopping import cancel_and_wait

log = logging.getLogger(__name__)

RESUBSCRIBE_SECONDS = 5.0


class ChannelListener:
    def __init__(self, channel: str, on_message: Callable[[bytes], None],
                 on_lost: Callable[[], None], retry_seconds: float = RESUBSCRIBE_SECONDS) -> None:
        self.channel = channel
        self._on_message = on_message
        self._on_lost = on_lost
        self.retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._next_attempt = 0.0

    @property
    def listening(self) -> bool:
        return self._task is not None and not self._task.done()

    async def ensure_listening(self, coordinator: Coordinator) -> None:
        """`listen`, unless listening already or a recent attempt failed (cheap when listening)."""
        if self.listening or time.monotonic() < self._next_attempt:
            return
        await self.listen(coordinator)

    async def listen(self, coordinator: Coordinator) -> None:
        """Subscribe and start handing messages on; a no-op when pub/sub is unavailable."""
        if self.listening:
            return
        # Concurrent first lookups: one subscribes, the others go without the cache meanwhile.
        self._next_attempt = time.monotonic() + self.retry_seconds
        try:
            subscription = await coordinator.subscribe(self.channel)
        except CoordinatorUnavailable as exc:
            log.warning("not listening on %s, its cache is off until it can: %r", self.channel, exc)
            return
        self._task = asyncio.create_task(self._hear(subscription), name=f"listen-{self.channel}")

    async def _hear(self, subscription: Subscription) -> None:
        try:
            async for message in subscription:
                self._on_message(message)
        finally:
            self._on_lost()
            self._next_attempt = time.monotonic() + self.retry_seconds
            await subscription.close()

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
