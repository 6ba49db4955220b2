"""A per-process cache of media records, so a hot download costs no database round trip.

A media record changes only when it is quarantined or released, when its bytes move to another
datastore, or when it is purged; each of those is announced (`shared.media.changes`) and every
process forgets that media at once. Pub/sub is fire-and-forget (a Redis reconnect loses what was
published meanwhile), so entries also expire after `ttl_seconds`: that bounds how long a lost
announcement can show stale state. Only found records are kept: media not recorded yet may be
uploaded or fetched at any moment.
"""

from __future__ import annotations

from shared.coordination.base import Coordinator
from shared.coordination.listener import ChannelListener
from shared.db.repositories.media import MediaRecord
from shared.expiring_lru import ExpiringLru
from shared.media.changes import CHANNEL, parse_change

RECORD_TTL_SECONDS = 10.0
RECORD_MAX_ENTRIES = 100_000
"""About 50 MB at most: a record is a few hundred bytes."""

MediaKey = tuple[str, str]  # (origin, media_id)


class MediaRecordCache:
    """(origin, media_id) -> record for a few seconds, least recently used out first.

    It remembers only while it hears changes: until `listen` has subscribed (and after the
    subscription ends) every lookup misses and the caller reads the database. The first lookup
    of a process subscribes (`ensure_listening`), so every app that serves downloads caches.
    """

    def __init__(self, ttl_seconds: float = RECORD_TTL_SECONDS,
                 max_entries: int = RECORD_MAX_ENTRIES) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: ExpiringLru[MediaKey, MediaRecord] = ExpiringLru(max_entries)
        self._listener = ChannelListener(CHANNEL, self._heard, self._lost)
        # Bumped by every change heard: a record read from the database before a change
        # arrived may be the old state, so `put` refuses it (see `generation`).
        self._generation = 0

    @property
    def listening(self) -> bool:
        return self._listener.listening

    @property
    def generation(self) -> int:
        """Read before the database lookup and hand to `put` with its result."""
        return self._generation

    def get(self, origin: str, media_id: str) -> MediaRecord | None:
        if not self.listening:
            self._entries.pop((origin, media_id))
            return None
        return self._entries.get((origin, media_id))

    def put(self, record: MediaRecord, generation: int) -> None:
        """Keep `record`, read from the database when `generation` was current."""
        if not self.listening or generation != self._generation:
            return
        self._entries.put((record.origin, record.media_id), record, self.ttl_seconds)

    def forget(self, origin: str, media_id: str) -> None:
        self._generation += 1
        self._entries.pop((origin, media_id))

    async def ensure_listening(self, coordinator: Coordinator) -> None:
        """Start hearing media changes unless already (cheap when listening)."""
        await self._listener.ensure_listening(coordinator)

    async def listen(self, coordinator: Coordinator) -> None:
        """Hear media changes and start remembering; a no-op (every lookup then reads the
        database) when pub/sub is unavailable."""
        await self._listener.listen(coordinator)

    def _heard(self, message: bytes) -> None:
        change = parse_change(message)
        if change is not None:
            self.forget(*change)

    def _lost(self) -> None:
        self._generation += 1
        self._entries.clear()

    async def close(self) -> None:
        await self._listener.close()
        self._entries.clear()
