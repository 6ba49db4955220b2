"""All SQL for the `background_tasks` table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import BackgroundTaskRow


@dataclass(frozen=True)
class TaskRecord:
    id: int
    name: str
    params: dict[str, Any]
    state: dict[str, Any] | None
    result: dict[str, Any] | None
    start_ts: int
    end_ts: int | None
    error: str | None
    done: int
    total: int | None
    created_by: str | None
    attempts: int

    @property
    def is_finished(self) -> bool:
        return self.end_ts is not None


def _loads(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _to_record(row: BackgroundTaskRow) -> TaskRecord:
    return TaskRecord(
        id=row.id, name=row.name, params=_loads(row.params) or {}, state=_loads(row.state),
        result=_loads(row.result), start_ts=row.start_ts, end_ts=row.end_ts, error=row.error,
        done=row.done, total=row.total, created_by=row.created_by, attempts=row.attempts,
    )


async def insert_task(
    session: AsyncSession, name: str, params: dict[str, Any], start_ts: int, created_by: str | None
) -> TaskRecord:
    """Add a task and flush (the caller commits); the record carries its new id."""
    row = BackgroundTaskRow(name=name, params=json.dumps(params), start_ts=start_ts,
                            created_by=created_by, done=0, attempts=0)
    session.add(row)
    await session.flush()
    return _to_record(row)


async def get_task(session: AsyncSession, task_id: int) -> TaskRecord | None:
    row = await session.get(BackgroundTaskRow, task_id)
    return _to_record(row) if row is not None else None


async def list_tasks(session: AsyncSession, include_finished: bool) -> list[TaskRecord]:
    stmt = select(BackgroundTaskRow).order_by(BackgroundTaskRow.id)
    if not include_finished:
        stmt = stmt.where(BackgroundTaskRow.end_ts.is_(None))
    return [_to_record(row) for row in (await session.scalars(stmt)).all()]


async def note_attempt(session: AsyncSession, task_id: int) -> None:
    """Count one more start of a task (a resume after a crash is an attempt too)."""
    await session.execute(
        update(BackgroundTaskRow).where(BackgroundTaskRow.id == task_id)
        .values(attempts=BackgroundTaskRow.attempts + 1)
    )


async def save_checkpoint(
    session: AsyncSession, task_id: int, state: dict[str, Any], done: int, total: int | None
) -> None:
    await session.execute(
        update(BackgroundTaskRow)
        .where(BackgroundTaskRow.id == task_id, BackgroundTaskRow.end_ts.is_(None))
        .values(state=json.dumps(state), done=done, total=total)
    )


async def finish_task(
    session: AsyncSession, task_id: int, end_ts: int, result: dict[str, Any] | None, error: str | None
) -> None:
    await session.execute(
        update(BackgroundTaskRow)
        .where(BackgroundTaskRow.id == task_id, BackgroundTaskRow.end_ts.is_(None))
        .values(end_ts=end_ts, result=json.dumps(result) if result is not None else None, error=error)
    )


async def delete_finished_tasks_before(session: AsyncSession, name: str, end_before: int) -> int:
    """Forget finished tasks named `name` that ended before `end_before` (no commit)."""
    result = await session.execute(
        delete(BackgroundTaskRow).where(
            BackgroundTaskRow.name == name, BackgroundTaskRow.end_ts.is_not(None),
            BackgroundTaskRow.end_ts < end_before,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
