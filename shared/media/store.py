"""The one media writer: every stored object, and the row that points at it, is made here.

Public entry points, one per use:

* `store_media(rt, MediaWrite(kind=..., ...), source) -> MediaRecord`: bytes that become a media
  row. `kind="local"`: uploads (sync, and async into a reservation with `fills_reservation`),
  URL preview images, admin imports (a given `media_id`, `user_id`, `creation_ts`, and
  `check_quota=False`). `kind="remote"`: remote media fetched over federation.
* `store_thumbnail(rt, ThumbnailWrite(key, content_type), source) -> ThumbnailRecord`.
* `copy_object(rt, ObjectCopy(...), to) -> StoredObject`: a datastore transfer; copies an
  existing object into datastore `to` (the caller then points its rows at the copy and calls
  `delete_if_unreferenced` for the old object).
* `delete_if_unreferenced(rt, datastore_id, location)` and `hash_lock(rt, sha256)`: what purges
  use, so deleting follows the same rules as writing.

`source` is a finished file with its hash and size (`HashedFile`: a `SpooledFile` is one). The
caller owns the temp file and discards it; the writer never deletes a file it did not make. A
`disposable` source (a temp file that would be discarded right after) may instead be moved into
a file datastore: no bytes copied, and the discard then finds nothing left to delete.

The rules, in this one place:

1. **Hash lock.** Storing and recording run under the cluster-wide lock `upload:<sha256>`
   (failing open: an outage costs duplicate work, never corruption), so identical bytes arriving
   at once on two machines are stored once, and a purge (same lock) never deletes an object
   that a writer is about to reuse.
2. **Quarantine.** Local writes of quarantined bytes are refused (403) before anything is
   stored; remote media with quarantined bytes is recorded as quarantined.
3. **Quota.** A local write for a user is checked against `uploads.quotas` under a per-user
   lock held while it records (`shared.media.quota`), whoever writes (uploads and previews).
4. **Dedupe.** Media reuses a recorded copy of the same bytes when its object still exists;
   otherwise the bytes go to the datastore for the kind under their content key, which
   thumbnails with the same bytes share.
5. **Orphans.** An object that no row points at once the write ends (recording failed, or
   another process recorded first) is deleted again.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import ClauseElement

from shared.db.repositories.media import (
    FIND_STORED_COPY,
    INSERT_MEDIA,
    MediaIdTaken,
    MediaRecord,
    StoredCopy,
    find_stored_copy,
    get_media,
    insert_media,
    media_rows_at,
)
from shared.db.repositories.reservations import delete_reservation
from shared.db.repositories.thumbnails import (
    ThumbnailKey,
    ThumbnailRecord,
    insert_thumbnail,
    thumbnail_rows_at,
)
from shared.ids.media_id import with_new_media_id
from shared.matrix.disposition import DEFAULT_CONTENT_TYPE, clean_filename
from shared.matrix.errors import CannotOverwrite, Forbidden
from shared.media.locks import lock_unless_unavailable
from shared.media.quota import quota_held
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.storage.base import Datastore, StoredObject
from shared.storage.keys import content_key
from shared.storage.spool import spool_to_temp

log = logging.getLogger(__name__)
R = TypeVar("R")

MediaKind = Literal["local", "remote"]
DATASTORE_KIND = {"local": "local_media", "remote": "remote_media", "thumbnail": "thumbnails"}
"""Which datastore (`DatastoreRegistry.for_kind`) new objects of each kind go to."""
QUARANTINED = "This content has been quarantined and cannot be uploaded"
HASH_LOCK_TTL_SECONDS = 60
HASH_LOCK_WAIT_SECONDS = 600
"""Long enough for another machine to finish storing a very large identical file."""


class HashedFile(Protocol):
    """A finished file and what it holds: a `SpooledFile`, a thumbnail a worker wrote..."""

    @property
    def path(self) -> Path: ...

    @property
    def sha256(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def disposable(self) -> bool:
        """True when `path` is a temp file the caller discards once stored, so the writer may
        move it (never for a file that must stay, such as a stored object read in place)."""
        ...


@dataclass(frozen=True)
class MediaWrite:
    """What is known about bytes that become media (the bytes themselves are the `source`)."""

    kind: MediaKind
    origin: str
    content_type: str | None
    filename: str | None
    # The uploader (None for remote media); local media counts against their quota.
    user_id: str | None = None
    # None allocates a fresh ID (local media). A given ID that is taken raises `CannotOverwrite`
    # for local media; for remote media the row already recorded is returned.
    media_id: str | None = None
    # An async upload: the row replaces the reservation of `media_id` in one transaction.
    fills_reservation: bool = False
    # False only for operators' writes (admin imports), which no user quota limits.
    check_quota: bool = True
    # None: now. Imports keep the original's.
    creation_ts: int | None = None

    def __post_init__(self) -> None:
        if self.media_id is None and (self.kind == "remote" or self.fills_reservation):
            raise ValueError("remote media and reservations are written under a given media_id")


@dataclass(frozen=True)
class ThumbnailWrite:
    key: ThumbnailKey
    content_type: str


@dataclass(frozen=True)
class ObjectCopy:
    """An existing object to copy: where it is, and what it holds."""

    datastore_id: str
    location: str
    sha256: str
    content_type: str


def _now_ms() -> int:
    return int(time.time() * 1000)


@asynccontextmanager
async def hash_lock(rt: Runtime, sha256: str) -> AsyncIterator[None]:
    """Hold the lock every writer and purge of objects with these bytes takes."""
    async with lock_unless_unavailable(
        rt.coordinator, f"upload:{sha256}", HASH_LOCK_TTL_SECONDS, HASH_LOCK_WAIT_SECONDS
    ):
        yield


async def delete_if_unreferenced(
    rt: Runtime, datastore_id: str, location: str, own_refs: int = 0
) -> None:
    """Delete an object no media or thumbnail row points at (deduplicated objects are shared),
    beyond the `own_refs` rows the caller is about to forget.

    Call with the hash lock of its bytes held. A datastore no longer configured keeps it.
    """
    async with rt.sessions() as session:
        users = await media_rows_at(session, datastore_id, location)
        users += await thumbnail_rows_at(session, datastore_id, location)
    if users > own_refs:
        return
    try:
        store = rt.datastores.get(datastore_id)
    except KeyError:
        log.warning("datastore %s is no longer configured; %s left in place", datastore_id, location)
        return
    await store.delete(location)


async def _write(
    rt: Runtime,
    sha256: str,
    put: Callable[[], Awaitable[StoredObject]],
    record: Callable[[StoredObject], Awaitable[tuple[R, StoredObject]]],
) -> R:
    """Under the hash lock: `put` the object, `record` its row (returning the row and the object
    the row points at), and delete the object again if no row ends up using it."""
    async with hash_lock(rt, sha256):
        stored = await put()
        try:
            row, used = await record(stored)
        except BaseException:
            await _forget(rt, stored)
            raise
        if (used.datastore_id, used.location) != (stored.datastore_id, stored.location):
            await _forget(rt, stored)
        return row


async def _forget(rt: Runtime, stored: StoredObject) -> None:
    try:
        await delete_if_unreferenced(rt, stored.datastore_id, stored.location)
    except Exception:
        log.exception("could not delete unrecorded object %s/%s", stored.datastore_id, stored.location)


# --- the lookup and the insert of every media write ---------------------------------------------
#
# On SQLite each statement through SQLAlchemy and aiosqlite costs three or four hops to the
# connection's thread (cursor, execute, fetch, close) plus one for the commit, each a futex wake
# and two context switches, and SQLAlchemy's execution machinery on top: together about a fifth
# of a 1 MiB upload's CPU in the profile (docs/profiles/upload-1mib-c8-sqlite.txt). There the
# repository's own statements, compiled once to SQLite's SQL, run on the pooled aiosqlite
# connection itself: one hop for the lookup, two for the insert and its commit. PostgreSQL keeps
# the Core path (asyncpg already runs a statement in one round trip).


@dataclass(frozen=True)
class _SqliteStatement:
    """A Core statement compiled to SQLite's SQL with named parameters, and the parameters the
    compilation fixed (LIMIT and OFFSET of a `.limit(1)`)."""

    sql: str
    fixed: Mapping[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement, **compile_args: Any) -> _SqliteStatement:
        compiled = statement.compile(dialect=sqlite_dialect.dialect(paramstyle="named"),
                                     **compile_args)
        return cls(str(compiled), dict(compiled.params))

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.fixed, **values}


_SQLITE_FIND_STORED_COPY = _SqliteStatement.of(FIND_STORED_COPY)
_SQLITE_INSERT_MEDIA = _SqliteStatement.of(
    INSERT_MEDIA, column_keys=[field.name for field in fields(MediaRecord)]
)


def _on_aiosqlite(rt: Runtime) -> bool:
    dialect = rt.engine.dialect
    return dialect.name == "sqlite" and dialect.driver == "aiosqlite"


@asynccontextmanager
async def _aiosqlite_connection(rt: Runtime) -> AsyncIterator[Any]:
    """A pooled connection's aiosqlite connection; the pool rolls back anything left open (a
    failed insert's transaction) when it takes it back."""
    async with rt.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        yield raw.driver_connection


async def _find_stored_copy(rt: Runtime, sha256: str) -> StoredCopy | None:
    if not _on_aiosqlite(rt):
        # A plain connection, not an ORM session: the session's bookkeeping cost more than the query.
        async with rt.engine.connect() as connection:
            return await find_stored_copy(connection, sha256)
    statement = _SQLITE_FIND_STORED_COPY
    async with _aiosqlite_connection(rt) as driver:
        rows = await driver.execute_fetchall(statement.sql, statement.parameters({"sha256": sha256}))
    return StoredCopy(rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None


async def _insert_media(rt: Runtime, row: MediaRecord, fills_reservation: bool) -> None:
    """Insert the row (and drop the reservation it fills) in one transaction; `MediaIdTaken`
    when the ID exists."""
    if not fills_reservation and _on_aiosqlite(rt):
        statement = _SQLITE_INSERT_MEDIA
        async with _aiosqlite_connection(rt) as driver:
            try:
                await driver.execute_fetchall(statement.sql, statement.parameters(asdict(row)))
            except sqlite3.IntegrityError as exc:
                raise MediaIdTaken(row.mxc) from exc
            await driver.commit()
        return
    async with rt.engine.connect() as connection:
        await insert_media(connection, row)
        if fills_reservation:
            await delete_reservation(connection, row.origin, row.media_id)
        await connection.commit()


# --- media ------------------------------------------------------------------------------------


async def store_media(rt: Runtime, write: MediaWrite, source: HashedFile) -> MediaRecord:
    """Store `source` once and record it as media (see the module's rules).

    Raises `Forbidden` (quarantined local bytes, or over the user's quota) and `CannotOverwrite`
    (a local media ID that already has content); nothing is left stored when it raises.
    """
    async with AsyncExitStack() as stack:
        if write.kind == "local" and write.user_id is not None and write.check_quota:
            await stack.enter_async_context(
                quota_held(rt, write.origin, write.user_id, source.size_bytes)
            )
        quarantined = False

        async def put() -> StoredObject:
            nonlocal quarantined
            stored, quarantined = await _media_object(rt, write, source)
            return stored

        async def record(stored: StoredObject) -> tuple[MediaRecord, StoredObject]:
            row = await _record_media(rt, write, source, stored, quarantined)
            return row, StoredObject(row.datastore_id, row.location, row.size_bytes)

        made = await _write(rt, source.sha256, put, record)
    if write.kind == "local":
        metrics.media_stored(rt, made.size_bytes)
    return made


async def _media_object(rt: Runtime, write: MediaWrite, source: HashedFile) -> tuple[StoredObject, bool]:
    """A recorded copy of the bytes when one is still stored, else a new object; and whether
    the bytes are quarantined. Local writes of quarantined bytes stop here."""
    existing = await _find_stored_copy(rt, source.sha256)
    if existing is not None:
        if existing.quarantined and write.kind == "local":
            raise Forbidden(QUARANTINED)
        if await rt.datastores.get(existing.datastore_id).exists(existing.location):
            stored = StoredObject(existing.datastore_id, existing.location, source.size_bytes)
            return stored, existing.quarantined
    store = rt.datastores.for_kind(DATASTORE_KIND[write.kind])
    content_type = write.content_type or DEFAULT_CONTENT_TYPE
    stored = await store.put_file(content_key(source.sha256), source.path, content_type,
                                  move=source.disposable)
    return stored, existing is not None and existing.quarantined


def _media_row(
    rt: Runtime, write: MediaWrite, source: HashedFile, media_id: str, stored: StoredObject,
    quarantined: bool,
) -> MediaRecord:
    return MediaRecord(
        origin=write.origin,
        media_id=media_id,
        upload_name=clean_filename(write.filename),
        content_type=write.content_type,
        user_id=write.user_id,
        sha256=source.sha256,
        size_bytes=source.size_bytes,
        creation_ts=write.creation_ts if write.creation_ts is not None else _now_ms(),
        datastore_id=stored.datastore_id,
        location=stored.location,
        quarantined=quarantined,
        # Freeze applies by upload time: media keeps the flag it got here whatever the config later.
        authenticated=rt.config.repo.freeze_unauthenticated_media,
    )


async def _record_media(
    rt: Runtime, write: MediaWrite, source: HashedFile, stored: StoredObject, quarantined: bool
) -> MediaRecord:
    async def insert(media_id: str) -> MediaRecord:
        row = _media_row(rt, write, source, media_id, stored, quarantined)
        await _insert_media(rt, row, write.fills_reservation)
        return row

    if write.media_id is None:
        # A fresh ID, retrying the rare collision.
        return await with_new_media_id(rt.ids, insert, MediaIdTaken)
    try:
        return await insert(write.media_id)
    except MediaIdTaken as exc:
        if write.kind == "local":
            raise CannotOverwrite() from exc
    # Another process recorded this remote media meanwhile (a very slow fetch): use its row.
    async with rt.sessions() as session:
        existing = await get_media(session, write.origin, write.media_id)
    if existing is None:
        raise RuntimeError(f"mxc://{write.origin}/{write.media_id} is taken but has no row")
    return existing


# --- thumbnails -------------------------------------------------------------------------------


async def store_thumbnail(rt: Runtime, write: ThumbnailWrite, source: HashedFile) -> ThumbnailRecord:
    """Store a thumbnail's bytes under their content key and record it; when another process
    recorded the same key first, its row is the answer."""
    store = rt.datastores.for_kind(DATASTORE_KIND["thumbnail"])

    async def put() -> StoredObject:
        return await store.put_file(content_key(source.sha256), source.path, write.content_type,
                                    move=source.disposable)

    async def record(stored: StoredObject) -> tuple[ThumbnailRecord, StoredObject]:
        row = ThumbnailRecord(
            key=write.key,
            content_type=write.content_type,
            sha256=source.sha256,
            size_bytes=source.size_bytes,
            creation_ts=_now_ms(),
            datastore_id=stored.datastore_id,
            location=stored.location,
        )
        async with rt.sessions() as session:
            recorded = await insert_thumbnail(session, row)
        return recorded, StoredObject(recorded.datastore_id, recorded.location, recorded.size_bytes)

    return await _write(rt, source.sha256, put, record)


# --- datastore transfers ----------------------------------------------------------------------


async def copy_object(rt: Runtime, copy: ObjectCopy, to: Datastore) -> StoredObject:
    """Copy an existing object into datastore `to` under its content key; the original stays.

    A streamed copy is checked against `copy.sha256` on the way and raises `ValueError` when the
    bytes differ (nothing is stored).
    """
    source_store = rt.datastores.get(copy.datastore_id)
    key = content_key(copy.sha256)
    async with hash_lock(rt, copy.sha256):
        if await to.exists(key):
            return StoredObject(to.id, key, await to.size(key))
        in_place = await source_store.local_path(copy.location)
        if in_place is not None:
            return await to.put_file(key, in_place, copy.content_type)
        spooled = await spool_to_temp(source_store.open_stream(copy.location), rt.temp_dir, None,
                                     rt.temp_tag)
        async with spooled:
            if spooled.sha256 != copy.sha256:
                raise ValueError(f"{copy.datastore_id}/{copy.location} does not hold {copy.sha256}")
            return await to.put_file(key, spooled.path, copy.content_type, move=True)
