"""SQL over where objects live: the objects of a datastore, size estimates, switching records
from one datastore to another, and the journal of switched objects not yet deleted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, distinct, func, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.archive_models import DatastoreMoveRow
from shared.db.models import MediaRow, ThumbnailRow


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


async def objects_after(
    session: AsyncSession, datastore_id: str, before_ts: int, after_location: str, limit: int
) -> list[StoredObjectRef]:
    """Distinct objects of `datastore_id` used only before `before_ts` (media by last access,
    else creation; thumbnails by creation), in location order after `after_location`."""
    rows = union_all(_media_in(datastore_id, before_ts), _thumbnails_in(datastore_id, before_ts)).subquery()
    stmt = (
        select(rows.c.location, func.min(rows.c.sha256), func.max(rows.c.size_bytes),
               func.min(rows.c.content_type))
        .where(rows.c.location > after_location)
        .group_by(rows.c.location)
        .order_by(rows.c.location)
        .limit(limit)
    )
    result = await session.execute(stmt)
    return [StoredObjectRef(r[0], r[1], int(r[2]), r[3] or "application/octet-stream") for r in result]


async def count_objects(session: AsyncSession, datastore_id: str, before_ts: int) -> int:
    rows = union_all(_media_in(datastore_id, before_ts), _thumbnails_in(datastore_id, before_ts)).subquery()
    return int((await session.execute(select(func.count(distinct(rows.c.location))))).scalar() or 0)


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


async def rows_at(session: AsyncSession, datastore_id: str, location: str) -> int:
    """Media plus thumbnail rows that still use one object."""
    total = 0
    for model in (MediaRow, ThumbnailRow):
        stmt = select(func.count()).select_from(model).where(
            model.datastore_id == datastore_id, model.location == location)
        total += int((await session.execute(stmt)).scalar() or 0)
    return total


async def journal_move(
    session: AsyncSession, task_key: str, source_id: str, location: str, target_id: str, ts: int
) -> None:
    existing = await session.get(DatastoreMoveRow, (task_key, source_id, location))
    if existing is None:
        session.add(DatastoreMoveRow(task_key=task_key, datastore_id=source_id, location=location,
                                     target_id=target_id, switched_ts=ts))


async def journaled_moves(session: AsyncSession, task_key: str) -> list[DatastoreMoveRow]:
    stmt = select(DatastoreMoveRow).where(DatastoreMoveRow.task_key == task_key).order_by(
        DatastoreMoveRow.switched_ts)
    return list((await session.scalars(stmt)).all())


async def forget_move(session: AsyncSession, task_key: str, source_id: str, location: str) -> None:
    await session.execute(delete(DatastoreMoveRow).where(
        DatastoreMoveRow.task_key == task_key, DatastoreMoveRow.datastore_id == source_id,
        DatastoreMoveRow.location == location))
