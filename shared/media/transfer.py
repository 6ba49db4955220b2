"""Move objects from one datastore to another while they are being downloaded.

Each object goes through three idempotent steps, so a transfer killed at any point and resumed
finishes with every object moved exactly once and nothing lost:

1. copy: stream the object from the source into a temp file (checking its hash) and put it in
   the target under the same content-addressed key (a put of an existing key is a no-op);
2. switch: under the object's hash lock (the one uploads take to reuse stored bytes), point every
   media and thumbnail row of it at the target, and journal the move, in one transaction;
3. delete: once `grace_seconds` have passed since the switch, so that a download which read the
   old row just before it has opened its stream, switch any row that pointed at the old copy
   meanwhile and delete the old object, then drop the journal entry.

At no moment does a row point at a missing object, so no download fails during the move.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from shared.db.repositories.datastore_objects import (
    StoredObjectRef,
    count_objects,
    forget_move,
    journal_move,
    journaled_moves,
    objects_after,
    switch_object,
)
from shared.media.locks import lock_unless_unavailable
from shared.runtime import Runtime
from shared.storage.base import Datastore, ObjectNotFound
from shared.storage.spool import spool_to_temp

log = logging.getLogger(__name__)

PAGE_SIZE = 50
COPY_CHUNK_BYTES = 1024 * 1024
DELETE_GRACE_SECONDS = 5.0
HASH_LOCK_TTL_SECONDS = 60
HASH_LOCK_WAIT_SECONDS = 600


@dataclass
class TransferState:
    """The checkpoint: objects before `cursor` (in location order) have been dealt with."""

    cursor: str = ""
    moved: int = 0
    failed: int = 0
    bytes_moved: int = 0
    total: int | None = None

    @classmethod
    def from_json(cls, value: dict[str, object] | None) -> TransferState:
        return cls(**value) if value else cls()  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


Checkpoint = Callable[[TransferState], Awaitable[None]]


class TransferFailed(Exception):
    """The transfer cannot run (unknown or identical datastores)."""


def _hash_lock(sha256: str) -> str:
    # The same name `shared.media.store` locks while it reuses or records stored bytes.
    return f"upload:{sha256}"


def _sha_of(location: str) -> str:
    return location.rsplit("/", 1)[-1]


async def _copy(rt: Runtime, source: Datastore, target: Datastore, obj: StoredObjectRef) -> bool:
    """Step 1. False when the source copy is gone or does not match its hash (left in place)."""
    try:
        stream = source.open_stream(obj.location, None, COPY_CHUNK_BYTES)
        spooled = await spool_to_temp(stream, rt.temp_dir, None)
    except ObjectNotFound:
        log.warning("transfer: %s/%s is missing from the source", source.id, obj.location)
        return False
    async with spooled:
        if spooled.sha256 != obj.sha256:
            log.error("transfer: %s/%s has hash %s, rows say %s; not moved", source.id, obj.location,
                      spooled.sha256, obj.sha256)
            return False
        await target.put_file(obj.location, spooled.path, obj.content_type)
    if await target.size(obj.location) != spooled.size_bytes:
        log.error("transfer: %s/%s has the wrong size in the target", target.id, obj.location)
        return False
    return True


async def _switch(rt: Runtime, task_key: str, source: Datastore, target: Datastore, location: str) -> None:
    """Step 2: rows and journal in one transaction, under the hash lock."""
    lock = lock_unless_unavailable(rt.coordinator, _hash_lock(_sha_of(location)),
                                   HASH_LOCK_TTL_SECONDS, HASH_LOCK_WAIT_SECONDS)
    async with lock, rt.sessions() as session:
        await switch_object(session, source.id, location, target.id)
        await journal_move(session, task_key, source.id, location, target.id, int(time.time() * 1000))
        await session.commit()


async def finish_deletes(rt: Runtime, task_key: str, grace_seconds: float, wait: bool) -> int:
    """Step 3 for every journaled move whose grace has passed (all of them when `wait`)."""
    async with rt.sessions() as session:
        moves = await journaled_moves(session, task_key)
    done = 0
    for move in moves:
        due = move.switched_ts / 1000 + grace_seconds
        delay = due - time.time()
        if delay > 0:
            if not wait:
                break
            await asyncio.sleep(delay)
        source = rt.datastores.get(move.datastore_id)
        async with lock_unless_unavailable(rt.coordinator, _hash_lock(_sha_of(move.location)),
                                           HASH_LOCK_TTL_SECONDS, HASH_LOCK_WAIT_SECONDS):
            async with rt.sessions() as session:
                # A row recorded against the old copy after the switch (an upload reusing it).
                await switch_object(session, move.datastore_id, move.location, move.target_id)
                await session.commit()
            await source.delete(move.location)
            async with rt.sessions() as session:
                await forget_move(session, task_key, move.datastore_id, move.location)
                await session.commit()
        done += 1
    return done


async def transfer_datastore(
    rt: Runtime,
    *,
    task_key: str,
    source_id: str,
    target_id: str,
    before_ts: int,
    state: TransferState,
    checkpoint: Checkpoint,
    grace_seconds: float = DELETE_GRACE_SECONDS,
) -> TransferState:
    """Move every object of `source_id` used only before `before_ts` to `target_id`.

    Resumable: pass the last checkpointed `state` (and the same `task_key`) to go on.
    """
    if source_id == target_id:
        raise TransferFailed("Source and target datastore cannot be the same")
    try:
        source, target = rt.datastores.get(source_id), rt.datastores.get(target_id)
    except KeyError as exc:
        raise TransferFailed(str(exc)) from exc
    # A killed run may have switched objects it did not get to delete.
    await finish_deletes(rt, task_key, grace_seconds, wait=True)
    if state.total is None:
        async with rt.sessions() as session:
            state.total = await count_objects(session, source_id, before_ts)
        await checkpoint(state)
    while True:
        async with rt.sessions() as session:
            page = await objects_after(session, source_id, before_ts, state.cursor, PAGE_SIZE)
        if not page:
            break
        for obj in page:
            if await _copy(rt, source, target, obj):
                await _switch(rt, task_key, source, target, obj.location)
                state.moved += 1
                state.bytes_moved += obj.size_bytes
            else:
                state.failed += 1
            state.cursor = obj.location
            await checkpoint(state)
        await finish_deletes(rt, task_key, grace_seconds, wait=False)
    await finish_deletes(rt, task_key, grace_seconds, wait=True)
    await checkpoint(state)
    return state
