"""SQL behind per-user upload quotas: what a user has uploaded so far."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import MediaRow


@dataclass(frozen=True)
class UserUsage:
    bytes: int
    files: int


async def user_usage(session: AsyncSession, user_id: str) -> UserUsage:
    """Total size and number of the media rows the user uploaded (every row counts, deduped or not,
    as matrix-media-repo counts them)."""
    stmt = select(func.coalesce(func.sum(MediaRow.size_bytes), 0), func.count()).where(
        MediaRow.user_id == user_id
    )
    total, count = (await session.execute(stmt)).one()
    return UserUsage(bytes=int(total), files=int(count))
