"""All SQL for the `admin_audit` table."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import AdminAuditRow


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: int
    user_id: str | None
    method: str
    path: str
    query: str | None
    status: int
    outcome: str
    detail: str | None


async def insert_audit(session: AsyncSession, entry: AuditEntry) -> None:
    """Add one entry (the id of `entry` is ignored); the caller commits."""
    session.add(AdminAuditRow(
        ts=entry.ts, user_id=entry.user_id, method=entry.method, path=entry.path,
        query=entry.query, status=entry.status, outcome=entry.outcome, detail=entry.detail,
    ))


async def audit_page(session: AsyncSession, before_id: int | None, limit: int) -> list[AuditEntry]:
    """Newest first, starting below `before_id` when given."""
    stmt = select(AdminAuditRow).order_by(AdminAuditRow.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(AdminAuditRow.id < before_id)
    return [
        AuditEntry(r.id, r.ts, r.user_id, r.method, r.path, r.query, r.status, r.outcome, r.detail)
        for r in (await session.scalars(stmt)).all()
    ]
