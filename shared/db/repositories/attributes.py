"""All SQL for the `media_attributes` table (MMR's `purpose`: none or pinned)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import MediaAttributesRow

PURPOSE_NONE = "none"
PURPOSE_PINNED = "pinned"
PURPOSES = (PURPOSE_NONE, PURPOSE_PINNED)


async def get_purpose(session: AsyncSession, origin: str, media_id: str) -> str:
    row = await session.get(MediaAttributesRow, (origin, media_id))
    return row.purpose if row is not None else PURPOSE_NONE


async def set_purpose(session: AsyncSession, origin: str, media_id: str, purpose: str) -> None:
    """Set (no commit); `none` removes the row, the default needs none."""
    await session.execute(delete(MediaAttributesRow).where(
        MediaAttributesRow.origin == origin, MediaAttributesRow.media_id == media_id))
    if purpose != PURPOSE_NONE:
        session.add(MediaAttributesRow(origin=origin, media_id=media_id, purpose=purpose))


async def is_pinned(session: AsyncSession, origin: str, media_id: str) -> bool:
    return await get_purpose(session, origin, media_id) == PURPOSE_PINNED

