"""Stored objects that no row references: what a crash between storing bytes and recording
their row leaves behind (or a bug, or a restore of an older database). Machine 0 removes them.

Only content keys (`ab/cd/<sha256>`) are judged, so objects another feature keeps under other
keys are never touched. An object is removed only when it is older than the grace period (an
upload in flight has stored its bytes but not yet committed its row) and, checked again under
the hash lock that writers take before they reuse an object, no media or thumbnail row points at
it. Half-written objects (file datastore temp files, S3 incomplete multipart uploads) older than
the grace period go too, whoever began them.

`sweep_orphans` is resumable: it reports its position after every batch through `checkpoint`
and starts again from a saved state, so a sweep killed anywhere redoes at most one batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from shared.db.repositories.media import media_locations_in_use, media_rows_at
from shared.db.repositories.thumbnails import thumbnail_locations_in_use, thumbnail_rows_at
from shared.media.locks import lock_unless_unavailable
from shared.runtime import Runtime
from shared.storage.base import Datastore, ListedObject

log = logging.getLogger(__name__)

BATCH = 500
DEFAULT_GRACE_SECONDS = 6 * 3600
"""Far longer than any upload takes between storing its bytes and committing its row."""
HASH_LOCK_TTL_SECONDS = 60
HASH_LOCK_WAIT_SECONDS = 120


@dataclass
class SweepState:
    """Where a sweep is (datastore index and last key judged there) and what it found so far."""

    datastore_index: int = 0
    after: str | None = None
    partials_done: bool = False
    orphans: int = 0
    orphan_bytes: int = 0
    partials: int = 0
    partial_bytes: int = 0
    examined: int = 0

    @classmethod
    def load(cls, saved: dict[str, Any] | None) -> SweepState:
        return cls(**saved) if saved else cls()


Checkpoint = Callable[[dict[str, Any]], Awaitable[None]]


async def _no_checkpoint(_state: dict[str, Any]) -> None:
    return None


async def sweep_orphans(
    rt: Runtime,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
    state: dict[str, Any] | None = None,
    checkpoint: Checkpoint = _no_checkpoint,
    now: float | None = None,
) -> dict[str, Any]:
    """Remove (or with `dry_run` only count) every orphan older than `grace_seconds`.

    Returns the final state: counts of orphans and partial objects (and their bytes) found,
    removed unless `dry_run`, and how many objects were examined.
    """
    cutoff = (time.time() if now is None else now) - grace_seconds
    progress = SweepState.load(state)
    stores = rt.datastores.all()
    while progress.datastore_index < len(stores):
        store = stores[progress.datastore_index]
        # Step 1: half-written objects, in one go (they are few).
        if not progress.partials_done:
            count, size = await store.sweep_partials(cutoff, dry_run)
            progress.partials += count
            progress.partial_bytes += size
            progress.partials_done = True
            await checkpoint(asdict(progress))
        # Step 2: every content object, batch by batch in key order.
        batch: list[ListedObject] = []
        async for listed in store.list_content_objects(progress.after):
            batch.append(listed)
            if len(batch) >= BATCH:
                await _judge(rt, store, batch, cutoff, dry_run, progress)
                await checkpoint(asdict(progress))
                batch = []
        await _judge(rt, store, batch, cutoff, dry_run, progress)
        progress.datastore_index, progress.after, progress.partials_done = (
            progress.datastore_index + 1, None, False)
        await checkpoint(asdict(progress))
    log.info("orphan sweep%s: %d orphans (%d bytes), %d partial objects (%d bytes), %d examined",
             " (dry run)" if dry_run else "", progress.orphans, progress.orphan_bytes,
             progress.partials, progress.partial_bytes, progress.examined)
    return asdict(progress)


async def _judge(
    rt: Runtime, store: Datastore, batch: list[ListedObject], cutoff: float, dry_run: bool,
    progress: SweepState,
) -> None:
    if not batch:
        return
    progress.examined += len(batch)
    progress.after = batch[-1].key
    old = {o.key: o for o in batch if o.modified < cutoff}
    async with rt.sessions() as session:
        used = await media_locations_in_use(session, store.id, {k: _sha(k) for k in old})
        used |= await thumbnail_locations_in_use(session, store.id, list(old))
    for key, listed in old.items():
        if key not in used and await _remove_if_unreferenced(rt, store, key, dry_run):
            progress.orphans += 1
            progress.orphan_bytes += listed.size_bytes


def _sha(key: str) -> str:
    return key.rsplit("/", 1)[1]


async def _remove_if_unreferenced(rt: Runtime, store: Datastore, key: str, dry_run: bool) -> bool:
    """Under the hash lock, so that no writer reuses the object while it goes."""
    async with lock_unless_unavailable(
        rt.coordinator, f"upload:{_sha(key)}", HASH_LOCK_TTL_SECONDS, HASH_LOCK_WAIT_SECONDS
    ):
        async with rt.sessions() as session:
            users = await media_rows_at(session, store.id, key)
            users += await thumbnail_rows_at(session, store.id, key)
        if users:
            return False
        if not dry_run:
            await store.delete(key)
    return True
