"""Move objects from one datastore to another while they are being downloaded.

The objects a transfer covers are fixed when it starts (a plan row each), so downloads that
update `last_access_ts` meanwhile change nothing. Each object then goes through three
idempotent steps, so a transfer killed at any point and resumed finishes with every object moved
exactly once and nothing lost:

1. copy: stream the object from the source into a temp file (checking its hash) and put it in
   the target under the same content-addressed key (a put of an existing key is a no-op);
2. switch: under the object's hash lock (the one uploads take to reuse stored bytes), point every
   media and thumbnail row of it at the target and mark its plan row `switched`, in one
   transaction;
3. delete: once `grace_seconds` have passed since the switch, so that a download which read the
   old row just before it has opened its stream, switch any row that pointed at the old copy
   meanwhile, delete the old object, then the plan row.

At no moment does a row point at a missing object, so no download fails during the move.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass

from shared.db.repositories.datastore_objects import (
    FAILED,
    PLANNED,
    SWITCHED,
    StoredObjectRef,
    count_moves,
    forget_move,
    forget_task_moves,
    media_using,
    moves_in_state,
    object_at,
    plan_moves,
    set_move_state,
    switch_object,
)
from shared.media.changes import announce_media_changed
from shared.media.store import ObjectCopy, copy_object, delete_if_unreferenced, hash_lock
from shared.runtime import Runtime
from shared.storage.base import Datastore, ObjectNotFound

log = logging.getLogger(__name__)

PAGE_SIZE = 50
CONCURRENT_MOVES = 4
"""Objects copied at once: each copy mostly waits on the two datastores and the database."""
CHECKPOINT_SECONDS = 0.5
DELETE_GRACE_SECONDS = 5.0


@dataclass
class TransferState:
    """The checkpoint: counts so far; what is left is in the plan rows."""

    moved: int = 0
    failed: int = 0
    bytes_moved: int = 0
    total: int | None = None

    @classmethod
    def from_json(cls, value: dict[str, object] | None) -> TransferState:
        known = {k: v for k, v in (value or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


Checkpoint = Callable[[TransferState], Awaitable[None]]


class TransferFailed(Exception):
    """The transfer cannot run (unknown or identical datastores)."""


def _sha_of(location: str) -> str:
    return location.rsplit("/", 1)[-1]


def _lock(rt: Runtime, location: str) -> AbstractAsyncContextManager[None]:
    return hash_lock(rt, _sha_of(location))


async def _copy(rt: Runtime, source: Datastore, target: Datastore, obj: StoredObjectRef) -> bool:
    """Step 1. False when the source copy is gone or does not match its hash (left in place)."""
    try:
        stored = await copy_object(rt, ObjectCopy(source.id, obj.location, obj.sha256, obj.content_type),
                                   target)
    except ObjectNotFound:
        log.warning("transfer: %s/%s is missing from the source", source.id, obj.location)
        return False
    except ValueError as exc:
        log.error("transfer: %s; not moved", exc)
        return False
    if stored.location != obj.location or stored.size_bytes != obj.size_bytes:
        log.error("transfer: %s/%s has the wrong size in the target", target.id, obj.location)
        return False
    return True


async def _switch(rt: Runtime, task_key: str, source: Datastore, target: Datastore, location: str) -> None:
    """Step 2: rows and plan row in one transaction, under the hash lock."""
    async with _lock(rt, location), rt.sessions() as session:
        await switch_object(session, source.id, location, target.id)
        await set_move_state(session, task_key, source.id, location, SWITCHED, int(time.time() * 1000))
        await session.commit()
    await _announce_switched(rt, target.id, location)


async def _announce_switched(rt: Runtime, target_id: str, location: str) -> None:
    """Processes that cache media records (`shared.media.records`) must read the new datastore
    before the grace period ends and the old copy goes."""
    async with rt.sessions() as session:
        switched = await media_using(session, target_id, location)
    for origin, media_id in switched:
        await announce_media_changed(rt.coordinator, origin, media_id)


async def finish_deletes(rt: Runtime, task_key: str, grace_seconds: float, wait: bool) -> None:
    """Step 3 for every switched object whose grace has passed (all of them when `wait`)."""
    while True:
        async with rt.sessions() as session:
            moves = await moves_in_state(session, task_key, SWITCHED, PAGE_SIZE)
        if not moves:
            return
        for move in moves:
            delay = (move.switched_ts or 0) / 1000 + grace_seconds - time.time()
            if delay > 0:
                if not wait:
                    return
                await asyncio.sleep(delay)
            async with _lock(rt, move.location):
                async with rt.sessions() as session:
                    # A row recorded against the old copy after the switch (an upload reusing it).
                    late = await switch_object(session, move.datastore_id, move.location, move.target_id)
                    await session.commit()
                if late:
                    await _announce_switched(rt, move.target_id, move.location)
                await delete_if_unreferenced(rt, move.datastore_id, move.location)
                async with rt.sessions() as session:
                    await forget_move(session, task_key, move.datastore_id, move.location)
                    await session.commit()


async def _move_one(rt: Runtime, task_key: str, source: Datastore, target: Datastore,
                    location: str, state: TransferState) -> None:
    async with rt.sessions() as session:
        obj = await object_at(session, source.id, location)
    if obj is None:  # purged, or moved by someone else, since the plan was made
        async with rt.sessions() as session:
            await forget_move(session, task_key, source.id, location)
            await session.commit()
        state.total = (state.total or 1) - 1
        return
    if await _copy(rt, source, target, obj):
        await _switch(rt, task_key, source, target, location)
        state.moved += 1
        state.bytes_moved += obj.size_bytes
    else:
        async with rt.sessions() as session:
            await set_move_state(session, task_key, source.id, location, FAILED)
            await session.commit()
        state.failed += 1


async def transfer_datastore(
    rt: Runtime,
    *,
    task_key: str,
    source_id: str,
    target_id: str,
    before_ts: int,
    state: TransferState,
    checkpoint: Checkpoint,
    grace_seconds: float | None = None,
) -> TransferState:
    """Move every object of `source_id` used only before `before_ts` to `target_id`.

    Resumable: pass the last checkpointed `state` (and the same `task_key`) to go on.
    `grace_seconds` defaults to `DELETE_GRACE_SECONDS`, read at call time.
    """
    grace_seconds = DELETE_GRACE_SECONDS if grace_seconds is None else grace_seconds
    if source_id == target_id:
        raise TransferFailed("Source and target datastore cannot be the same")
    try:
        source, target = rt.datastores.get(source_id), rt.datastores.get(target_id)
    except KeyError as exc:
        raise TransferFailed(str(exc)) from exc
    if state.total is None:
        # Planning and its checkpoint are one step: a crash before the checkpoint plans again.
        async with rt.sessions() as session:
            await forget_task_moves(session, task_key)
            state.total = await plan_moves(session, task_key, source_id, target_id, before_ts)
            await session.commit()
        await checkpoint(state)
    # A killed run may have switched objects it did not get to delete.
    await finish_deletes(rt, task_key, grace_seconds, wait=True)
    async with rt.sessions() as session:
        state.failed = await count_moves(session, task_key, FAILED)
    slots = asyncio.Semaphore(CONCURRENT_MOVES)
    last_checkpoint = time.monotonic()

    async def move_one(location: str) -> None:
        nonlocal last_checkpoint
        async with slots:
            await _move_one(rt, task_key, source, target, location, state)
        # Progress only: what is left is in the plan rows, so a lost checkpoint loses nothing.
        if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
            last_checkpoint = time.monotonic()
            await checkpoint(state)

    while True:
        async with rt.sessions() as session:
            page = await moves_in_state(session, task_key, PLANNED, PAGE_SIZE)
        if not page:
            break
        await asyncio.gather(*(move_one(move.location) for move in page))
        await finish_deletes(rt, task_key, grace_seconds, wait=False)
    await finish_deletes(rt, task_key, grace_seconds, wait=True)
    async with rt.sessions() as session:
        await forget_task_moves(session, task_key)
        await session.commit()
    # Exact even when a kill fell between a switch and its checkpoint.
    state.moved = (state.total or 0) - state.failed
    await checkpoint(state)
    return state
