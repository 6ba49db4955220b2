"""All SQL for the `media` table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import Statements
from shared.db.models import MediaRow
from shared.db.repositories.mapping import record_of


@dataclass(frozen=True)
class MediaRecord:
    """A media item as the services see it."""

    origin: str
    media_id: str
    upload_name: str | None
    content_type: str | None
    user_id: str | None
    sha256: str
    size_bytes: int
    creation_ts: int
    datastore_id: str
    location: str
    quarantined: bool = False
    authenticated: bool = False

    @property
    def mxc(self) -> str:
        return f"mxc://{self.origin}/{self.media_id}"


class MediaIdTaken(Exception):
    """A media row with that (origin, media_id) already exists."""


def _to_record(row: MediaRow) -> MediaRecord:
    return record_of(MediaRecord, row)


_MEDIA = cast(Table, MediaRow.__table__)
# Every upload runs these two, so they are built once, on the table rather than the ORM entity,
# with their values as bind parameters: SQLAlchemy then reuses the statement's memoised cache
# key and compiled SQL, where a statement built per call (`.values(...)`, `== sha256`) paid for
# building, cache-key generation and the ORM's bulk-insert path every time (a fifth of a 1 MiB
# upload's CPU on SQLite).
INSERT_MEDIA = insert(_MEDIA)
FIND_STORED_COPY = (
    select(_MEDIA.c.datastore_id, _MEDIA.c.location, _MEDIA.c.quarantined)
    .where(_MEDIA.c.sha256 == bindparam("sha256"))
    .order_by(_MEDIA.c.quarantined.desc())
    .limit(1)
)


async def insert_media(session: Statements, record: MediaRecord) -> None:
    """Insert a record; raise MediaIdTaken when the ID exists (the caller's transaction is rolled back).

    One Core INSERT rather than an ORM add and flush: every upload pays for this, and nothing
    needs the row in the session afterwards.
    """
    try:
        await session.execute(INSERT_MEDIA, asdict(record))
    except IntegrityError as exc:
        await session.rollback()
        raise MediaIdTaken(record.mxc) from exc


async def get_media(session: AsyncSession, origin: str, media_id: str) -> MediaRecord | None:
    row = await session.get(MediaRow, (origin, media_id))
    return _to_record(row) if row else None


@dataclass(frozen=True)
class StoredCopy:
    """Where bytes with some hash are stored, and whether they are quarantined."""

    datastore_id: str
    location: str
    quarantined: bool


async def find_stored_copy(session: Statements, sha256: str) -> StoredCopy | None:
    """A stored copy of these bytes, a quarantined one first: one query answers both "may these
    bytes be stored?" and "are they stored already?"."""
    row = (await session.execute(FIND_STORED_COPY, {"sha256": sha256})).first()
    return StoredCopy(row[0], row[1], bool(row[2])) if row else None


async def set_quarantined(
    session: AsyncSession, origin: str, media_id: str, quarantined: bool
) -> bool:
    """Flag one item; True when it existed."""
    stmt = (
        update(MediaRow)
        .where(MediaRow.origin == origin, MediaRow.media_id == media_id)
        .values(quarantined=quarantined)
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def record_last_access(session: AsyncSession, accesses: dict[tuple[str, str], int]) -> None:
    """Set `last_access_ts` of many media rows at once: `{(origin, media_id): ts_ms}`.

    One bulk UPDATE by primary key; rows that have gone (purged meanwhile) are simply not there.
    """
    if not accesses:
        return
    table = cast(Table, MediaRow.__table__)
    # A Core executemany: the ORM's bulk update by primary key would fail on a vanished row.
    stmt = (
        update(table)
        .where(table.c.origin == bindparam("k_origin"), table.c.media_id == bindparam("k_media_id"))
        .values(last_access_ts=bindparam("k_ts"))
    )
    rows = [
        {"k_origin": origin, "k_media_id": media_id, "k_ts": ts}
        for (origin, media_id), ts in accesses.items()
    ]
    await session.execute(stmt, rows)


async def delete_media(session: AsyncSession, origin: str, media_id: str) -> None:
    """Remove one row (no commit)."""
    await session.execute(
        delete(MediaRow).where(MediaRow.origin == origin, MediaRow.media_id == media_id)
    )


async def media_rows_at(session: AsyncSession, datastore_id: str, location: str) -> int:
    """How many media rows point at one stored object (deduplicated bytes are shared)."""
    stmt = select(func.count()).select_from(MediaRow).where(
        MediaRow.datastore_id == datastore_id, MediaRow.location == location
    )
    return int((await session.execute(stmt)).scalar() or 0)


async def media_locations_in_use(
    session: AsyncSession, datastore_id: str, candidates: dict[str, str]
) -> set[str]:
    """Which of `candidates` (location -> sha256 of its bytes) some media row points at.

    Asked by hash (indexed) and then narrowed to the exact datastore and location.
    """
    if not candidates:
        return set()
    stmt = select(MediaRow.location).where(
        MediaRow.sha256.in_(set(candidates.values())), MediaRow.datastore_id == datastore_id,
        MediaRow.location.in_(list(candidates)),
    )
    return set((await session.scalars(stmt)).all())
