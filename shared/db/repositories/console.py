"""The operator console's read-only figures: usage by day, by datastore, media of a user.

The usage figures are read from the rollups the database keeps (revision 0005_usage_rollup:
a few rows per day, uploader or origin, however many media rows), the rest through an index of
0004_console or 0005 (or the tables' keys), so the console's pages stay fast on a large media
table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import (
    BackgroundTaskRow,
    MediaRow,
    MediaUsageDayRow,
    MediaUsageUserRow,
    ThumbnailUsageRow,
)
from shared.db.repositories.media import MediaRecord, _to_record
from shared.db.repositories.tasks import TaskRecord
from shared.db.repositories.tasks import _to_record as _task_record

DAY_MS = 86_400_000


@dataclass(frozen=True)
class DayFigures:
    day: int  # days since the epoch (UTC)
    size_bytes: int
    files: int


@dataclass(frozen=True)
class DatastoreFigures:
    datastore_id: str
    size_bytes: int
    files: int


@dataclass(frozen=True)
class DayStoreFigures:
    day: int
    datastore_id: str
    size_bytes: int
    files: int


async def usage_by_day_and_datastore(session: AsyncSession, origin: str) -> list[DayStoreFigures]:
    """Bytes and files of `origin`'s media per (day stored, datastore), from which the totals,
    the datastore split and the days all follow."""
    days = MediaUsageDayRow
    files = func.sum(days.files)
    rows = (await session.execute(
        select(days.day, days.datastore_id, func.sum(days.size_bytes), files)
        .where(days.origin == origin).group_by(days.day, days.datastore_id)
        .having(files > 0))).all()
    return [DayStoreFigures(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


async def thumbnail_usage(session: AsyncSession, origin: str) -> tuple[int, int]:
    row = (await session.execute(
        select(func.coalesce(func.sum(ThumbnailUsageRow.size_bytes), 0),
               func.coalesce(func.sum(ThumbnailUsageRow.files), 0))
        .where(ThumbnailUsageRow.origin == origin))).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class UploaderFigures:
    user_id: str
    size_bytes: int
    files: int


async def top_uploaders(session: AsyncSession, origin: str, limit: int) -> list[UploaderFigures]:
    """The `limit` users of `origin` storing the most bytes."""
    users = MediaUsageUserRow
    size = func.sum(users.size_bytes)
    files = func.sum(users.files)
    rows = (await session.execute(
        select(users.user_id, size, files).where(users.origin == origin)
        .group_by(users.user_id).having(files > 0)
        .order_by(size.desc(), users.user_id).limit(limit))).all()
    return [UploaderFigures(str(r[0]), int(r[1]), int(r[2])) for r in rows]


async def remote_usage(session: AsyncSession, local_origins: Sequence[str]) -> tuple[int, int]:
    """(bytes, files) of the cached remote media: every origin that is not a local one."""
    row = (await session.execute(
        select(func.coalesce(func.sum(MediaUsageDayRow.size_bytes), 0),
               func.coalesce(func.sum(MediaUsageDayRow.files), 0))
        .where(MediaUsageDayRow.origin.not_in(list(local_origins))))).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class MediaDetails:
    record: MediaRecord
    last_access_ts: int | None


async def media_details(session: AsyncSession, origin: str, media_id: str) -> MediaDetails | None:
    row = await session.get(MediaRow, (origin, media_id))
    return MediaDetails(_to_record(row), row.last_access_ts) if row is not None else None


async def media_of_user(session: AsyncSession, user_id: str, limit: int) -> list[MediaDetails]:
    """A user's newest media first (at most `limit`)."""
    rows = (await session.scalars(
        select(MediaRow).where(MediaRow.user_id == user_id)
        .order_by(MediaRow.creation_ts.desc(), MediaRow.media_id).limit(limit))).all()
    return [MediaDetails(_to_record(row), row.last_access_ts) for row in rows]


async def user_totals(session: AsyncSession, user_id: str) -> tuple[int, int]:
    """(bytes, files) a user has stored."""
    row = (await session.execute(
        select(func.coalesce(func.sum(MediaUsageUserRow.size_bytes), 0),
               func.coalesce(func.sum(MediaUsageUserRow.files), 0))
        .where(MediaUsageUserRow.user_id == user_id))).one()
    return int(row[0]), int(row[1])


async def recent_tasks(session: AsyncSession, finished_limit: int) -> list[TaskRecord]:
    """Every unfinished task and the newest `finished_limit` finished ones, newest first."""
    unfinished = (await session.scalars(
        select(BackgroundTaskRow).where(BackgroundTaskRow.end_ts.is_(None))
        .order_by(BackgroundTaskRow.id.desc()))).all()
    finished = (await session.scalars(
        select(BackgroundTaskRow).where(BackgroundTaskRow.end_ts.is_not(None))
        .order_by(BackgroundTaskRow.end_ts.desc()).limit(finished_limit))).all()
    return [_task_record(row) for row in (*unfinished, *finished)]
