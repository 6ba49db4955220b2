"""All SQL for exports and imports (and the media an export covers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.archive_models import ExportMediaRow, ExportPartRow, ExportRow, ImportPartRow, ImportRow
from shared.db.models import MediaRow
from shared.db.repositories.media import MediaRecord, _to_record


@dataclass(frozen=True)
class PartRecord:
    """A stored `.tgz` part (of an export or an import)."""

    index: int
    file_name: str
    size_bytes: int
    sha256: str
    datastore_id: str
    location: str


# --- exports -------------------------------------------------------------------------------------


async def create_export(session: AsyncSession, export_id: str, entity: str, created_ts: int,
                        task_id: int | None) -> None:
    session.add(ExportRow(export_id=export_id, entity=entity, created_ts=created_ts, task_id=task_id))


async def get_export(session: AsyncSession, export_id: str) -> ExportRow | None:
    return await session.get(ExportRow, export_id)


async def set_export_task(session: AsyncSession, export_id: str, task_id: int) -> None:
    await session.execute(update(ExportRow).where(ExportRow.export_id == export_id).values(task_id=task_id))


def _part(row: ExportPartRow | ImportPartRow, file_name: str) -> PartRecord:
    return PartRecord(row.part_index, file_name, row.size_bytes, row.sha256, row.datastore_id, row.location)


async def export_parts(session: AsyncSession, export_id: str) -> list[PartRecord]:
    stmt = (select(ExportPartRow).where(ExportPartRow.export_id == export_id)
            .order_by(ExportPartRow.part_index))
    return [_part(row, row.file_name) for row in (await session.scalars(stmt)).all()]


async def get_export_part(session: AsyncSession, export_id: str, index: int) -> PartRecord | None:
    row = await session.get(ExportPartRow, (export_id, index))
    return _part(row, row.file_name) if row else None


async def add_export_part(
    session: AsyncSession, export_id: str, part: PartRecord, records_json: Sequence[str]
) -> None:
    """The part and the manifest entries of the items in it, in one transaction (no commit)."""
    session.add(ExportPartRow(
        export_id=export_id, part_index=part.index, file_name=part.file_name,
        size_bytes=part.size_bytes, sha256=part.sha256, datastore_id=part.datastore_id,
        location=part.location,
    ))
    last = await session.execute(
        select(func.coalesce(func.max(ExportMediaRow.seq), 0)).where(ExportMediaRow.export_id == export_id))
    seq = int(last.scalar() or 0)
    for record_json in records_json:
        seq += 1
        session.add(ExportMediaRow(export_id=export_id, seq=seq, part_index=part.index,
                                   record_json=record_json))


async def export_records_json(session: AsyncSession, export_id: str) -> list[str]:
    """Every persisted manifest entry, in export order."""
    stmt = select(ExportMediaRow.record_json).where(ExportMediaRow.export_id == export_id).order_by(
        ExportMediaRow.seq)
    return list((await session.scalars(stmt)).all())


async def last_export_record_json(session: AsyncSession, export_id: str) -> str | None:
    stmt = (select(ExportMediaRow.record_json).where(ExportMediaRow.export_id == export_id)
            .order_by(ExportMediaRow.seq.desc()).limit(1))
    return (await session.scalars(stmt)).first()


async def delete_export(session: AsyncSession, export_id: str) -> None:
    for model in (ExportMediaRow, ExportPartRow, ExportRow):
        await session.execute(delete(model).where(model.export_id == export_id))


async def part_users(session: AsyncSession, datastore_id: str, location: str) -> int:
    """Export and import parts stored at one object (identical parts share it)."""
    total = 0
    for model in (ExportPartRow, ImportPartRow):
        stmt = select(func.count()).select_from(model).where(
            model.datastore_id == datastore_id, model.location == location)
        total += int((await session.execute(stmt)).scalar() or 0)
    return total


async def media_of_entity(
    session: AsyncSession, entity: str, after: tuple[int, str, str] | None, limit: int
) -> list[MediaRecord]:
    """A user's (`@...`) or a server's media in export order: (creation_ts, origin, media_id)."""
    owner = MediaRow.user_id == entity if entity.startswith("@") else MediaRow.origin == entity
    stmt = select(MediaRow).where(owner)
    if after is not None:
        ts, origin, media_id = after
        stmt = stmt.where(or_(
            MediaRow.creation_ts > ts,
            and_(MediaRow.creation_ts == ts, MediaRow.origin > origin),
            and_(MediaRow.creation_ts == ts, MediaRow.origin == origin, MediaRow.media_id > media_id),
        ))
    stmt = stmt.order_by(MediaRow.creation_ts, MediaRow.origin, MediaRow.media_id).limit(limit)
    return [_to_record(row) for row in (await session.scalars(stmt)).all()]


async def count_media_of_entity(session: AsyncSession, entity: str) -> int:
    owner = MediaRow.user_id == entity if entity.startswith("@") else MediaRow.origin == entity
    return int((await session.execute(select(func.count()).select_from(MediaRow).where(owner))).scalar() or 0)


# --- imports -------------------------------------------------------------------------------------


async def create_import(session: AsyncSession, import_id: str, created_ts: int) -> None:
    session.add(ImportRow(import_id=import_id, created_ts=created_ts, closed=False))


async def get_import(session: AsyncSession, import_id: str) -> ImportRow | None:
    return await session.get(ImportRow, import_id)


async def set_import_task(session: AsyncSession, import_id: str, task_id: int) -> None:
    await session.execute(update(ImportRow).where(ImportRow.import_id == import_id).values(task_id=task_id))


async def close_import(session: AsyncSession, import_id: str) -> None:
    await session.execute(update(ImportRow).where(ImportRow.import_id == import_id).values(closed=True))


@dataclass(frozen=True)
class ImportPart:
    part: PartRecord
    has_manifest: bool | None
    processed: bool


async def add_import_part(session: AsyncSession, import_id: str, size_bytes: int, sha256: str,
                          datastore_id: str, location: str) -> int:
    """Append a part (no commit); its index, one more than the last."""
    last = await session.execute(select(func.coalesce(func.max(ImportPartRow.part_index), 0)).where(
        ImportPartRow.import_id == import_id))
    index = int(last.scalar() or 0) + 1
    session.add(ImportPartRow(import_id=import_id, part_index=index, size_bytes=size_bytes, sha256=sha256,
                              datastore_id=datastore_id, location=location, processed=False))
    return index


async def import_parts(session: AsyncSession, import_id: str) -> list[ImportPart]:
    stmt = (select(ImportPartRow).where(ImportPartRow.import_id == import_id)
            .order_by(ImportPartRow.part_index))
    return [ImportPart(_part(row, f"part-{row.part_index}.tgz"), row.has_manifest, row.processed)
            for row in (await session.scalars(stmt)).all()]


async def mark_import_part(session: AsyncSession, import_id: str, index: int, *,
                           has_manifest: bool | None = None, processed: bool | None = None) -> None:
    values: dict[str, bool] = {}
    if has_manifest is not None:
        values["has_manifest"] = has_manifest
    if processed is not None:
        values["processed"] = processed
    await session.execute(update(ImportPartRow).where(
        ImportPartRow.import_id == import_id, ImportPartRow.part_index == index).values(**values))


async def delete_import(session: AsyncSession, import_id: str) -> None:
    for model in (ImportPartRow, ImportRow):
        await session.execute(delete(model).where(model.import_id == import_id))
