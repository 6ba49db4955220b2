"""Usage figures of a server's media (admin `usage/...` and Synapse's user media statistics)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import MediaRow, MediaUsageDayRow, ThumbnailUsageRow
from shared.db.repositories.media import MediaRecord, _to_record


async def server_usage(session: AsyncSession, origin: str) -> tuple[int, int, int, int]:
    """(media bytes, media count, thumbnail bytes, thumbnail count) of one origin, from the
    rollups the database keeps (0005_usage_rollup)."""
    media = (await session.execute(
        select(func.coalesce(func.sum(MediaUsageDayRow.size_bytes), 0),
               func.coalesce(func.sum(MediaUsageDayRow.files), 0))
        .where(MediaUsageDayRow.origin == origin))).one()
    thumbs = (await session.execute(
        select(func.coalesce(func.sum(ThumbnailUsageRow.size_bytes), 0),
               func.coalesce(func.sum(ThumbnailUsageRow.files), 0))
        .where(ThumbnailUsageRow.origin == origin))).one()
    return int(media[0]), int(media[1]), int(thumbs[0]), int(thumbs[1])


async def media_of(
    session: AsyncSession, origin: str, user_ids: list[str] | None = None,
    media_ids: list[str] | None = None,
) -> list[MediaRecord]:
    """One origin's records, of some users or some IDs when given, in (user, id) order."""
    stmt = select(MediaRow).where(MediaRow.origin == origin)
    if user_ids:
        stmt = stmt.where(MediaRow.user_id.in_(user_ids))
    if media_ids:
        stmt = stmt.where(MediaRow.media_id.in_(media_ids))
    stmt = stmt.order_by(MediaRow.user_id, MediaRow.media_id)
    return [_to_record(row) for row in (await session.scalars(stmt)).all()]


@dataclass(frozen=True)
class UserMediaStat:
    user_id: str
    media_count: int
    media_length: int


ORDER_COLUMNS = ("user_id", "displayname", "media_length", "media_count")


async def user_media_stats(
    session: AsyncSession, origin: str, order_by: str, ascending: bool, start: int, limit: int,
    from_ts: int | None, until_ts: int | None, search_term: str | None,
) -> tuple[list[UserMediaStat], int]:
    """A page of per-uploader totals of one origin's media, and how many uploaders in all."""
    count = func.count().label("media_count")
    length = func.coalesce(func.sum(MediaRow.size_bytes), 0).label("media_length")
    stmt = select(MediaRow.user_id, count, length).where(
        MediaRow.origin == origin, MediaRow.user_id.is_not(None), MediaRow.user_id != "")
    if from_ts is not None:
        stmt = stmt.where(MediaRow.creation_ts >= from_ts)
    if until_ts is not None:
        stmt = stmt.where(MediaRow.creation_ts < until_ts)
    if search_term:
        stmt = stmt.where(MediaRow.user_id.contains(search_term, autoescape=True))
    stmt = stmt.group_by(MediaRow.user_id)
    total = int((await session.execute(
        select(func.count()).select_from(stmt.subquery()))).scalar() or 0)
    key = {"media_count": count, "media_length": length}.get(order_by, MediaRow.user_id)
    ordered = [key.asc() if ascending else key.desc(), MediaRow.user_id.asc()]
    rows = (await session.execute(stmt.order_by(*ordered).offset(start).limit(limit))).all()
    return [UserMediaStat(str(r[0]), int(r[1]), int(r[2])) for r in rows], total
