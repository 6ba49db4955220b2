"""Forgetting media and thumbnails: the one place that deletes stored media (admin purges and
machine 0's recurring purges both come here).

Stored objects are content-addressed and shared by every row with the same bytes, so an object
is deleted only when no other media or thumbnail row points at it, checked under the hash lock
that uploads take before they reuse an object. The objects go first and the rows after: a purge
killed in between leaves rows that a resumed purge forgets again, never an object no row knows.
Pinned media (`purpose: pinned`) is never purged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from shared.db.repositories.attributes import is_pinned
from shared.db.repositories.media import MediaRecord, delete_media, get_media, media_rows_at
from shared.db.repositories.thumbnails import (
    ThumbnailRecord,
    delete_thumbnail,
    delete_thumbnails,
    get_thumbnail,
    list_thumbnails,
    thumbnail_rows_at,
)
from shared.media.changes import announce_media_changed
from shared.media.locks import lock_unless_unavailable
from shared.runtime import Runtime

log = logging.getLogger(__name__)

HASH_LOCK_TTL_SECONDS = 60
HASH_LOCK_WAIT_SECONDS = 120

Location = tuple[str, str]  # (datastore_id, location)


async def _delete_unless_used_elsewhere(rt: Runtime, where: Location, own_refs: int) -> None:
    """Delete the object at `where` unless rows other than the `own_refs` being forgotten use it."""
    datastore_id, location = where
    async with rt.sessions() as session:
        refs = await media_rows_at(session, datastore_id, location)
        refs += await thumbnail_rows_at(session, datastore_id, location)
    if refs > own_refs:
        return
    try:
        store = rt.datastores.get(datastore_id)
    except KeyError:
        log.warning("purge: datastore %s is no longer configured; %s left in place", datastore_id, location)
        return
    await store.delete(location)


async def forget_media(rt: Runtime, origin: str, media_id: str, keep_pinned: bool = True) -> bool:
    """Forget one media item with its thumbnails and every object only they used.

    False when it is pinned (kept); True otherwise, also when it was gone already, so a
    resumed purge counts an item it forgot before a crash.
    """
    async with rt.sessions() as session:
        record = await get_media(session, origin, media_id)
        if record is None:
            return True
        if keep_pinned and await is_pinned(session, origin, media_id):
            return False
    await _forget_locked(rt, record)
    await announce_media_changed(rt.coordinator, origin, media_id)
    return True


@asynccontextmanager
async def _hash_locks(rt: Runtime, hashes: set[str]) -> AsyncIterator[None]:
    """Hold the writers' hash lock of every one of `hashes`, taken in sorted order so that two
    purges sharing bytes never wait on each other in a circle."""
    async with AsyncExitStack() as stack:
        for sha256 in sorted(hashes):
            await stack.enter_async_context(lock_unless_unavailable(
                rt.coordinator, f"upload:{sha256}", HASH_LOCK_TTL_SECONDS, HASH_LOCK_WAIT_SECONDS))
        yield


async def _forget_locked(rt: Runtime, record: MediaRecord) -> None:
    async with rt.sessions() as session:
        thumbnails = await list_thumbnails(session, record.origin, record.media_id)
    # Held across objects and rows: a writer that reused one of these objects meanwhile
    # would find a row about to go and point a new one at a deleted object.
    async with _hash_locks(rt, {record.sha256, *(t.sha256 for t in thumbnails)}):
        async with rt.sessions() as session:
            thumbnails = await list_thumbnails(session, record.origin, record.media_id)
        own: list[Location] = [(record.datastore_id, record.location)]
        own += [(t.datastore_id, t.location) for t in thumbnails]
        for where in dict.fromkeys(own):
            await _delete_unless_used_elsewhere(rt, where, own.count(where))
        async with rt.sessions() as session:
            await delete_thumbnails(session, record.origin, record.media_id)
            await delete_media(session, record.origin, record.media_id)
            await session.commit()


async def forget_thumbnail(rt: Runtime, thumbnail: ThumbnailRecord) -> None:
    """Forget one thumbnail (its media stays; a later request generates it again)."""
    async with _hash_locks(rt, {thumbnail.sha256}):
        async with rt.sessions() as session:
            if await get_thumbnail(session, thumbnail.key) is None:
                return  # forgotten already; its object is no longer this row's to judge
        await _delete_unless_used_elsewhere(rt, (thumbnail.datastore_id, thumbnail.location), 1)
        async with rt.sessions() as session:
            await delete_thumbnail(session, thumbnail.key)
            await session.commit()
    await announce_media_changed(rt.coordinator, thumbnail.key.origin, thumbnail.key.media_id)
