"""Export a user's or a server's media as a v2 archive into the `archives` datastore.

Resumable: every persisted part is recorded with the manifest entries of its items in one
transaction, so a run that was killed starts again after the last persisted item, rebuilding only
the part it was writing (with the same bytes, see `shared.archive.writer`). A run that finds the
manifest part already stored has nothing left to do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.archive.format import MANIFEST_PART_NAME, PART_SUFFIX, ManifestRecord, part_key
from shared.archive.writer import ArchivedMedia, ArchiveWriter, FinishedPart
from shared.db.repositories.archives import (
    PartRecord,
    add_export_part,
    count_media_of_entity,
    export_parts,
    export_records_json,
    get_export,
    last_export_record_json,
    media_of_entity,
    part_users,
)
from shared.db.repositories.media import MediaRecord
from shared.runtime import Runtime
from shared.storage.base import ObjectNotFound

log = logging.getLogger(__name__)

PAGE_SIZE = 100
STREAM_CHUNK_BYTES = 1024 * 1024
PART_CONTENT_TYPE = "application/gzip"

Progress = Callable[[int, int], Awaitable[None]]
"""(items done, items in all) after each persisted part."""


@dataclass(frozen=True)
class ExportOutcome:
    parts: int
    media: int
    skipped: int


class ExportNotFound(Exception):
    """No `exports` row: the export was deleted (or never created)."""


def _s3_url(rt: Runtime, media: MediaRecord) -> str:
    try:
        store = rt.datastores.get(media.datastore_id)
    except KeyError:
        return ""
    return store.object_url(media.location) or ""


async def _sink(rt: Runtime, export_id: str, part: FinishedPart) -> None:
    """Store a finished part and record it (with its items) in one transaction."""
    store = rt.datastores.for_kind("archives")
    stored = await store.put_file(part_key("exports", export_id, part.sha256), part.path, PART_CONTENT_TYPE)
    record = PartRecord(part.index, part.file_name, part.size_bytes, part.sha256, store.id, stored.location)
    async with rt.sessions() as session:
        if await get_export(session, export_id) is None:
            # Deleted while being written: the part goes (unless identical bytes are another's).
            if not await part_users(session, store.id, stored.location):
                await store.delete(stored.location)
            raise ExportNotFound(export_id)
        await add_export_part(session, export_id, record, [json.dumps(r.to_json()) for r in part.records])
        await session.commit()


async def _resume_point(rt: Runtime, export_id: str) -> tuple[int, tuple[int, str, str] | None, int, bool]:
    """(next part index, last exported item's sort key, items exported, manifest stored?)."""
    async with rt.sessions() as session:
        parts = await export_parts(session, export_id)
        last = await last_export_record_json(session, export_id)
        done = len(await export_records_json(session, export_id)) if last else 0
    finished = any(p.file_name == MANIFEST_PART_NAME + PART_SUFFIX for p in parts)
    cursor = None
    if last is not None:
        record = ManifestRecord.from_json(json.loads(last))
        cursor = (record.created_ts, record.origin, record.media_id)
    return (max((p.index for p in parts), default=0) + 1, cursor, done, finished)


async def run_export(rt: Runtime, export_id: str, include_s3_urls: bool, progress: Progress) -> ExportOutcome:
    async with rt.sessions() as session:
        export = await get_export(session, export_id)
        if export is None:
            raise ExportNotFound(export_id)
        entity, created_ts = export.entity, export.created_ts
        total = await count_media_of_entity(session, entity)
    first_index, cursor, done, finished = await _resume_point(rt, export_id)
    skipped = 0
    if not finished:
        async def sink(part: FinishedPart) -> None:
            nonlocal done
            await _sink(rt, export_id, part)
            done += len(part.records)
            await progress(done, total)

        writer = ArchiveWriter(
            entity=entity, created_ts=created_ts, temp_dir=rt.temp_dir, temp_tag=rt.temp_tag, sink=sink,
            target_bytes_per_part=rt.config.archiving.target_bytes_per_part, first_index=first_index,
        )
        try:
            skipped = await _append_all(rt, writer, entity, cursor, include_s3_urls)
            await writer.finish(lambda: _all_records(rt, export_id))
        finally:
            await writer.discard()
    async with rt.sessions() as session:
        parts = await export_parts(session, export_id)
    # Every item was looked at; the skipped ones (quarantined, bytes missing) are in the result.
    await progress(total, total)
    return ExportOutcome(parts=len(parts), media=done, skipped=skipped)


async def _all_records(rt: Runtime, export_id: str) -> list[ManifestRecord]:
    async with rt.sessions() as session:
        rows = await export_records_json(session, export_id)
    return [ManifestRecord.from_json(json.loads(row)) for row in rows]


async def _append_all(
    rt: Runtime, writer: ArchiveWriter, entity: str, cursor: tuple[int, str, str] | None, s3_urls: bool
) -> int:
    """Append every item after `cursor`; quarantined or missing items are left out (counted)."""
    skipped = 0
    while True:
        async with rt.sessions() as session:
            page = await media_of_entity(session, entity, cursor, PAGE_SIZE)
        if not page:
            return skipped
        for media in page:
            cursor = (media.creation_ts, media.origin, media.media_id)
            if media.quarantined:
                log.warning("export: %s is quarantined and is left out", media.mxc)
                skipped += 1
                continue
            if not await _append_one(rt, writer, media, s3_urls):
                skipped += 1


async def _append_one(rt: Runtime, writer: ArchiveWriter, media: MediaRecord, s3_urls: bool) -> bool:
    try:
        store = rt.datastores.get(media.datastore_id)
        size = await store.size(media.location)
    except (KeyError, ObjectNotFound):
        log.warning("export: the bytes of %s are missing; left out", media.mxc)
        return False
    item = ArchivedMedia(
        origin=media.origin, media_id=media.media_id, upload_name=media.upload_name,
        content_type=media.content_type, user_id=media.user_id, creation_ts=media.creation_ts,
        size_bytes=size, s3_url=_s3_url(rt, media) if s3_urls else "",
    )
    record = await writer.append(item, store.open_stream(media.location, None, STREAM_CHUNK_BYTES))
    if record.sha256 != media.sha256:
        log.warning("export: %s should have hash %s but had %s", media.mxc, media.sha256, record.sha256)
    return True
