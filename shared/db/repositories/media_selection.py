"""Sets of media an admin acts on (purge, quarantine), read in keyset-ordered batches.

A `MediaSelector` says which records; `select_batch` pages through them by (origin, media_id)
after a cursor, so a task can checkpoint the cursor and resume after a crash where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import MediaAttributesRow, MediaRow
from shared.db.repositories.attributes import PURPOSE_PINNED
from shared.db.repositories.media import MediaRecord, _to_record


@dataclass(frozen=True)
class MediaSelector:
    """Every condition given must hold; pinned media is left out unless `include_pinned`."""

    origins: tuple[str, ...] | None = None  # origin in these
    not_origins: tuple[str, ...] | None = None  # origin not in these
    user_id: str | None = None
    created_before: int | None = None  # creation_ts < this
    used_before: int | None = None  # last access (else creation) < this
    quarantined: bool | None = None
    mxcs: tuple[tuple[str, str], ...] | None = None  # exactly these (origin, media_id)
    include_pinned: bool = False

    def where(self) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        if self.origins is not None:
            conditions.append(MediaRow.origin.in_(self.origins))
        if self.not_origins:
            conditions.append(MediaRow.origin.not_in(self.not_origins))
        if self.user_id is not None:
            conditions.append(MediaRow.user_id == self.user_id)
        if self.created_before is not None:
            conditions.append(MediaRow.creation_ts < self.created_before)
        if self.used_before is not None:
            last_used = func.coalesce(MediaRow.last_access_ts, MediaRow.creation_ts)
            conditions.append(last_used < self.used_before)
        if self.quarantined is not None:
            conditions.append(MediaRow.quarantined.is_(self.quarantined))
        if self.mxcs is not None:
            if not self.mxcs:
                conditions.append(MediaRow.origin.is_(None))  # nothing
            else:
                conditions.append(or_(*(and_(MediaRow.origin == o, MediaRow.media_id == m)
                                        for o, m in self.mxcs)))
        if not self.include_pinned:
            conditions.append(~exists().where(
                MediaAttributesRow.origin == MediaRow.origin,
                MediaAttributesRow.media_id == MediaRow.media_id,
                MediaAttributesRow.purpose == PURPOSE_PINNED,
            ))
        return and_(*conditions) if conditions else MediaRow.origin.is_not(None)


async def select_batch(
    session: AsyncSession, selector: MediaSelector, after: tuple[str, str] | None, limit: int
) -> list[MediaRecord]:
    """The next `limit` selected records after `after`, in (origin, media_id) order."""
    stmt = select(MediaRow).where(selector.where())
    if after is not None:
        stmt = stmt.where(tuple_(MediaRow.origin, MediaRow.media_id) > tuple_(*after))
    stmt = stmt.order_by(MediaRow.origin, MediaRow.media_id).limit(limit)
    return [_to_record(row) for row in (await session.scalars(stmt)).all()]


async def count_selected(session: AsyncSession, selector: MediaSelector) -> int:
    stmt = select(func.count()).select_from(MediaRow).where(selector.where())
    return int((await session.execute(stmt)).scalar() or 0)


async def set_quarantined_by_hash(
    session: AsyncSession, sha256: str, quarantined: bool, origin: str | None = None
) -> list[tuple[str, str]]:
    """Flag every record with these bytes (of one origin when given); the ones changed."""
    condition = and_(MediaRow.sha256 == sha256, MediaRow.quarantined.is_not(quarantined))
    if origin is not None:
        condition = and_(condition, MediaRow.origin == origin)
    changed = [(o, m) for o, m in (await session.execute(
        select(MediaRow.origin, MediaRow.media_id).where(condition))).all()]
    if changed:
        await session.execute(update(MediaRow).where(condition).values(quarantined=quarantined))
    return changed
