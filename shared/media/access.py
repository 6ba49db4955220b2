"""Recording when media was last served, batched off the request path.

Retention purges (`purge/old`) need `last_access_ts`, but a database write per download would
cost more than serving a small file. Each process collects accesses in memory and writes them in
one bulk UPDATE every `downloads.accessFlushSeconds`; at most that much is lost if it crashes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.repositories.media import record_last_access
from shared.stopping import cancel_and_wait

log = logging.getLogger(__name__)


class AccessRecorder:
    """Collects `(origin, media_id) -> last access` and flushes it periodically in one write.

    One per process, as `Runtime.access`: `rt.access.record(origin, media_id)`.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], flush_seconds: float) -> None:
        self._sessions = sessions
        self._flush_seconds = flush_seconds
        self._pending: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, origin: str, media_id: str) -> None:
        """Note that media was served now; written to the database within a few seconds."""
        self._pending[(origin, media_id)] = int(time.time() * 1000)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="media-access-flusher")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        if not batch:
            return
        try:
            async with self._sessions() as session:
                await record_last_access(session, batch)
                await session.commit()
        except Exception:
            # Losing a few access times only delays a retention purge; never crash the flusher.
            log.exception("could not record the last access of %d media", len(batch))

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self.flush()

