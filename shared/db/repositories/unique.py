"""Inserting a row whose key may already exist: the database's unique constraint decides races."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Base


async def add_unless_taken(session: AsyncSession, row: Base) -> bool:
    """Add and flush `row`; False (with the transaction rolled back) when its key is taken."""
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        return False
    return True
