"""SQL over where objects live: the objects of a datastore, size estimates, switching records
from one datastore to another, and the journal of switched objects not yet deleted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, insert, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.archive_models import DatastoreMoveRow
from shared.db.models import MediaRow, ThumbnailRow
from shared.matrix.disposition import served_content_type

PLANNED, SWITCHED, FAILED = "planned", "switched", "failed"


@dataclass(frozen=True)
class StoredObjectRef:
    """One object a datastore holds for some media or thumbnail rows."""

    location: str
    sha256: str
    size_bytes: int
    content_type: str


def _media_where(datastore_id: str, before_ts: int) -> ColumnElement[bool]:
    last_used = func.coalesce(MediaRow.last_access_ts, MediaRow.creation_ts)
    return (MediaRow.datastore_id == datastore_id) & (last_used < before_ts)


def _thumbnails_where(datastore_id: str, before_ts: int) -> ColumnElement[bool]:
    return (ThumbnailRow.datastore_id == datastore_id) & (ThumbnailRow.creation_ts < before_ts)


def _media_in(datastore_id: str, before_ts: int) -> Select[*tuple[Any, ...]]:
    return select(MediaRow.location, MediaRow.sha256, MediaRow.size_bytes, MediaRow.content_type).where(
        _media_where(datastore_id, before_ts))


def _thumbnails_in(datastore_id: str, before_ts: int) -> Select[*tuple[Any, ...]]:
    return select(
        ThumbnailRow.location, ThumbnailRow.sha256, ThumbnailRow.size_bytes, ThumbnailRow.content_type
    ).where(_thumbnails_where(datastore_id, before_ts))


def _locations(datastore_id: str, before_ts: int) -> Select[*tuple[Any, ...]]:
    rows = union_all(_media_in(datastore_id, before_ts), _thumbnails_in(datastore_id, before_ts)).subquery()
    return select(rows.c.location).distinct()


async def plan_moves(session: AsyncSession, task_key: str, source_id: str, target_id: str,
                     before_ts: int) -> int:
    """Fix the objects a transfer covers: every distinct object of `source_id` used only before
    `before_ts` (media by last access, else creation; thumbnails by creation). No commit; the
    number planned. Later downloads change `last_access_ts`, never the plan."""
    locations = _locations(source_id, before_ts).subquery()
    await session.execute(insert(DatastoreMoveRow).from_select(
        ["task_key", "datastore_id", "location", "target_id", "state"],
        select(literal(task_key), literal(source_id), locations.c.location, literal(target_id),
               literal(PLANNED)),
    ))
    return await count_moves(session, task_key, PLANNED)


async def count_moves(session: AsyncSession, task_key: str, state: str) -> int:
    stmt = select(func.count()).select_from(DatastoreMoveRow).where(
        DatastoreMoveRow.task_key == task_key, DatastoreMoveRow.state == state)
    return int((await session.execute(stmt)).scalar() or 0)


async def moves_in_state(
    session: AsyncSession, task_key: str, state: str, limit: int
) -> list[DatastoreMoveRow]:
    stmt = (select(DatastoreMoveRow)
            .where(DatastoreMoveRow.task_key == task_key, DatastoreMoveRow.state == state)
            .order_by(DatastoreMoveRow.switched_ts, DatastoreMoveRow.location).limit(limit))
    return list((await session.scalars(stmt)).all())


async def object_at(session: AsyncSession, datastore_id: str, location: str) -> StoredObjectRef | None:
    """What the rows using one object say about it (None when no row uses it any more)."""
    for model in (MediaRow, ThumbnailRow):
        stmt = select(model.sha256, model.size_bytes, model.content_type).where(
            model.datastore_id == datastore_id, model.location == location).limit(1)
        row = (await session.execute(stmt)).first()
        if row is not None:
            return StoredObjectRef(location, row[0], int(row[1]), served_content_type(row[2]))
    return None


@dataclass(frozen=True)
class SizeEstimate:
    """MMR's `size_estimate` answer (`datastores/info.go`): rows, distinct hashes and their bytes."""

    thumbnails_affected: int
    thumbnail_hashes_affected: int
    thumbnail_bytes: int
    media_affected: int
    media_hashes_affected: int
    media_bytes: int
    total_hashes_affected: int
    total_bytes: int


async def _rows_hashes_bytes(session: AsyncSession, rows: Select[*tuple[Any, ...]]) -> tuple[int, int, int]:
    """(rows, distinct hashes, bytes of the distinct hashes) of a query over location, sha256, size."""
    sub = rows.subquery()
    per_hash = select(sub.c.sha256, func.max(sub.c.size_bytes).label("size"),
                      func.count().label("n")).group_by(sub.c.sha256).subquery()
    stmt = select(func.coalesce(func.sum(per_hash.c.n), 0), func.count(),
                  func.coalesce(func.sum(per_hash.c.size), 0))
    row = (await session.execute(stmt)).one()
    return int(row[0]), int(row[1]), int(row[2])


async def size_estimate(session: AsyncSession, datastore_id: str, before_ts: int) -> SizeEstimate:
    media = _media_in(datastore_id, before_ts)
    thumbs = _thumbnails_in(datastore_id, before_ts)
    m_rows, m_hashes, m_bytes = await _rows_hashes_bytes(session, media)
    t_rows, t_hashes, t_bytes = await _rows_hashes_bytes(session, thumbs)
    both = union_all(media, thumbs).subquery().select()
    _, total_hashes, total_bytes = await _rows_hashes_bytes(session, both)
    return SizeEstimate(
        thumbnails_affected=t_rows, thumbnail_hashes_affected=t_hashes, thumbnail_bytes=t_bytes,
        media_affected=m_rows, media_hashes_affected=m_hashes, media_bytes=m_bytes,
        total_hashes_affected=total_hashes, total_bytes=total_bytes,
    )


async def media_using(session: AsyncSession, datastore_id: str, location: str) -> list[tuple[str, str]]:
    """(origin, media_id) of every media row that points at one object."""
    stmt = select(MediaRow.origin, MediaRow.media_id).where(
        MediaRow.datastore_id == datastore_id, MediaRow.location == location)
    return [(str(origin), str(media_id)) for origin, media_id in (await session.execute(stmt)).all()]


async def switch_object(session: AsyncSession, source_id: str, location: str, target_id: str) -> int:
    """Point every media and thumbnail row of one object at `target_id` (same key); rows switched."""
    switched = 0
    for model in (MediaRow, ThumbnailRow):
        result = await session.execute(
            update(model)
            .where(model.datastore_id == source_id, model.location == location)
            .values(datastore_id=target_id)
        )
        switched += int(result.rowcount)  # type: ignore[attr-defined]
    return switched


async def set_move_state(session: AsyncSession, task_key: str, source_id: str, location: str,
                         state: str, ts: int | None = None) -> None:
    await session.execute(update(DatastoreMoveRow).where(
        DatastoreMoveRow.task_key == task_key, DatastoreMoveRow.datastore_id == source_id,
        DatastoreMoveRow.location == location).values(state=state, switched_ts=ts))


async def forget_move(session: AsyncSession, task_key: str, source_id: str, location: str) -> None:
    await session.execute(delete(DatastoreMoveRow).where(
        DatastoreMoveRow.task_key == task_key, DatastoreMoveRow.datastore_id == source_id,
        DatastoreMoveRow.location == location))


async def forget_task_moves(session: AsyncSession, task_key: str) -> None:
    await session.execute(delete(DatastoreMoveRow).where(DatastoreMoveRow.task_key == task_key))
