"""All SQL for the `thumbnails` table."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import ThumbnailRow


@dataclass(frozen=True)
class ThumbnailKey:
    """What a stored thumbnail is unique by: one per media, size, method and animation."""

    origin: str
    media_id: str
    width: int
    height: int
    method: str
    animated: bool


@dataclass(frozen=True)
class ThumbnailRecord:
    key: ThumbnailKey
    content_type: str
    sha256: str
    size_bytes: int
    creation_ts: int
    datastore_id: str
    location: str


def _where(key: ThumbnailKey) -> ColumnElement[bool]:
    return and_(
        ThumbnailRow.origin == key.origin,
        ThumbnailRow.media_id == key.media_id,
        ThumbnailRow.width == key.width,
        ThumbnailRow.height == key.height,
        ThumbnailRow.method == key.method,
        ThumbnailRow.animated == key.animated,
    )


def _to_record(row: ThumbnailRow) -> ThumbnailRecord:
    key = ThumbnailKey(row.origin, row.media_id, row.width, row.height, row.method, row.animated)
    return ThumbnailRecord(
        key=key,
        content_type=row.content_type,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        creation_ts=row.creation_ts,
        datastore_id=row.datastore_id,
        location=row.location,
    )


async def get_thumbnail(session: AsyncSession, key: ThumbnailKey) -> ThumbnailRecord | None:
    row = (await session.execute(select(ThumbnailRow).where(_where(key)))).scalar_one_or_none()
    return _to_record(row) if row is not None else None


async def insert_thumbnail(session: AsyncSession, record: ThumbnailRecord) -> ThumbnailRecord:
    """Record a thumbnail and commit; when another process recorded the same key first, return
    that row instead (the unique constraint decides the race)."""
    key = record.key
    session.add(ThumbnailRow(
        origin=key.origin, media_id=key.media_id, width=key.width, height=key.height,
        method=key.method, animated=key.animated, content_type=record.content_type,
        sha256=record.sha256, size_bytes=record.size_bytes, creation_ts=record.creation_ts,
        datastore_id=record.datastore_id, location=record.location,
    ))
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await get_thumbnail(session, key)
        if existing is None:
            raise
        return existing
    return record


async def list_thumbnails(session: AsyncSession, origin: str, media_id: str) -> list[ThumbnailRecord]:
    """Every stored thumbnail of one media item."""
    stmt = select(ThumbnailRow).where(
        ThumbnailRow.origin == origin, ThumbnailRow.media_id == media_id
    ).order_by(ThumbnailRow.width, ThumbnailRow.height, ThumbnailRow.method)
    return [_to_record(row) for row in (await session.execute(stmt)).scalars()]


async def delete_thumbnails(session: AsyncSession, origin: str, media_id: str) -> int:
    """Forget every thumbnail of one media item (the objects are the caller's to delete)."""
    stmt = delete(ThumbnailRow).where(
        ThumbnailRow.origin == origin, ThumbnailRow.media_id == media_id
    )
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def thumbnails_created_before(
    session: AsyncSession, cutoff_ts: int, limit: int
) -> list[ThumbnailRecord]:
    stmt = select(ThumbnailRow).where(ThumbnailRow.creation_ts < cutoff_ts).limit(limit)
    return [_to_record(row) for row in (await session.execute(stmt)).scalars()]


async def delete_thumbnail(session: AsyncSession, key: ThumbnailKey) -> None:
    """Forget one thumbnail (no commit; the object is the caller's to delete)."""
    await session.execute(delete(ThumbnailRow).where(_where(key)))


async def thumbnail_rows_at(session: AsyncSession, datastore_id: str, location: str) -> int:
    """How many thumbnail rows point at one stored object (identical thumbnails share it)."""
    stmt = select(func.count()).select_from(ThumbnailRow).where(
        ThumbnailRow.datastore_id == datastore_id, ThumbnailRow.location == location
    )
    return int((await session.execute(stmt)).scalar() or 0)


async def thumbnail_locations_in_use(
    session: AsyncSession, datastore_id: str, locations: list[str]
) -> set[str]:
    """Which of `locations` some thumbnail row of `datastore_id` points at."""
    if not locations:
        return set()
    stmt = select(ThumbnailRow.location).where(
        ThumbnailRow.datastore_id == datastore_id, ThumbnailRow.location.in_(locations)
    )
    return set((await session.scalars(stmt)).all())
