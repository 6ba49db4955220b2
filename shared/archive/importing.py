"""Import a v2 archive (ours or matrix-media-repo's) part by part through the one media writer.

Parts arrive over HTTP in any order and are kept in the `archives` datastore until the import
ends, so machine 0 can die at any moment: the resumed task reads the stored parts again, and an
item already recorded (same origin and media ID) is never written twice. Each tar member is
spooled to a temp file (hashed on the way) and handed to `shared.media.store`, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shared.archive.format import ArchiveFormatError, Manifest, ManifestRecord, mxc_uri, part_key
from shared.archive.reader import Member, find_manifest, iter_members
from shared.db.repositories.archives import (
    ImportPart,
    add_import_part,
    delete_import,
    get_import,
    import_parts,
    mark_import_part,
    part_users,
)
from shared.db.repositories.media import get_media
from shared.matrix.errors import CannotOverwrite, Forbidden
from shared.media.store import MediaKind, MediaWrite, store_media
from shared.runtime import Runtime
from shared.storage.spool import SpooledFile, spool_to_temp

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1024 * 1024
PART_CONTENT_TYPE = "application/gzip"
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9.\-:\[\]]{1,255}")

Progress = Callable[[int, int], Awaitable[None]]


class ImportNotFound(Exception):
    """No such import (never started, or already finished)."""


@dataclass
class ImportOutcome:
    imported: int = 0
    already_present: int = 0
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


async def store_part(rt: Runtime, import_id: str, body: AsyncIterator[bytes]) -> int:
    """Spool an uploaded part and keep it in the `archives` datastore; its index."""
    async with rt.sessions() as session:
        if await get_import(session, import_id) is None:
            raise ImportNotFound(import_id)
    spooled = await spool_to_temp(body, rt.temp_dir, None, rt.temp_tag)
    async with spooled:
        store = rt.datastores.for_kind("archives")
        key = part_key("imports", import_id, spooled.sha256)
        stored = await store.put_file(key, spooled.path, PART_CONTENT_TYPE)
    async with rt.sessions() as session:
        index = await add_import_part(session, import_id, spooled.size_bytes, spooled.sha256, store.id,
                                      stored.location)
        await session.commit()
    return index


@asynccontextmanager
async def _part_file(rt: Runtime, part: ImportPart) -> AsyncIterator[Path]:
    """A stored part as a file (tar streams are read from files): in place when the datastore
    has local files, else a temp copy, removed afterwards. A format error names the part as
    the operator sent it (its number), not by the stored file's content-hash name."""
    store = rt.datastores.get(part.part.datastore_id)
    try:
        in_place = await store.local_path(part.part.location)
        if in_place is not None:
            yield in_place
            return
        stream = store.open_stream(part.part.location, None, READ_CHUNK_BYTES)
        async with await spool_to_temp(stream, rt.temp_dir, None, rt.temp_tag) as spooled:
            yield spooled.path
    except ArchiveFormatError as exc:
        raise ArchiveFormatError(f"part {part.part.index} of the import: {exc}") from exc


async def _member_chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, READ_CHUNK_BYTES):
        yield chunk


def _server_of(user_id: str) -> str | None:
    if not user_id.startswith("@") or ":" not in user_id:
        return None
    return user_id.split(":", 1)[1]


def _refusal(mxc: str, record: ManifestRecord) -> str | None:
    """Why an entry may not be imported (as MMR checks, plus valid IDs), or None."""
    if mxc_uri(record.origin, record.media_id) != mxc:
        return f"{mxc}: the entry describes {mxc_uri(record.origin, record.media_id)}"
    if not _SERVER_NAME.fullmatch(record.origin) or not _MEDIA_ID.fullmatch(record.media_id):
        return f"{mxc}: not a valid origin and media ID"
    if record.uploader:
        server = _server_of(record.uploader)
        if server is not None and server != record.origin:
            return f"{mxc}: uploaded by {record.uploader}, not a user of {record.origin}"
    return None


class _Importer:
    """The state of one run over the stored parts of one import."""

    def __init__(self, rt: Runtime, manifest: Manifest, progress: Progress) -> None:
        self.rt = rt
        self.manifest = manifest
        self.by_member = manifest.mxcs_by_member()
        self.progress = progress
        self.outcome = ImportOutcome()
        self.settled: set[str] = set()
        for mxc, record in manifest.media.items():
            reason = _refusal(mxc, record)
            if reason is not None:
                log.warning("import: skipping %s", reason)
                self.outcome.skipped.append(mxc)
                self.settled.add(mxc)

    @property
    def complete(self) -> bool:
        return len(self.settled) >= len(self.manifest.media)

    async def settle_present(self) -> None:
        """Entries recorded already (a previous run, or the same media here before)."""
        for mxc, record in self.manifest.media.items():
            if mxc not in self.settled and await self._present(record):
                self.settled.add(mxc)
                self.outcome.already_present += 1

    async def _present(self, record: ManifestRecord) -> bool:
        async with self.rt.sessions() as session:
            return await get_media(session, record.origin, record.media_id) is not None

    async def import_part(self, path: Path) -> None:
        members: Iterator[Member] = iter_members(path)
        while (member := await asyncio.to_thread(next, members, None)) is not None:
            wanted = [m for m in self.by_member.get(member.name, []) if m not in self.settled]
            if wanted:
                await self._import_member(member, wanted)

    async def _import_member(self, member: Member, mxcs: list[str]) -> None:
        spooled = await spool_to_temp(_member_chunks(member.file), self.rt.temp_dir, None,
                                      self.rt.temp_tag)
        async with spooled:
            for mxc in mxcs:
                await self._import_one(mxc, self.manifest.media[mxc], spooled)
                self.settled.add(mxc)
            await self.progress(len(self.settled), len(self.manifest.media))

    async def _import_one(self, mxc: str, record: ManifestRecord, spooled: SpooledFile) -> None:
        if await self._present(record):
            self.outcome.already_present += 1
            return
        if record.sha256 and record.sha256 != spooled.sha256:
            log.warning("import: %s has hash %s, the manifest says %s", mxc, spooled.sha256, record.sha256)
        # As MMR: media of a server not ours is imported as cached remote media.
        kind: MediaKind = "local" if self.rt.is_local_server(record.origin) else "remote"
        write = MediaWrite(
            kind=kind, origin=record.origin, content_type=record.content_type or None,
            filename=record.file_name or None, user_id=record.uploader or None,
            media_id=record.media_id, check_quota=False, creation_ts=record.created_ts or None,
        )
        try:
            await store_media(self.rt, write, spooled)
        except CannotOverwrite:
            self.outcome.already_present += 1
            return
        except Forbidden:
            log.warning("import: %s is quarantined here; skipped", mxc)
            self.outcome.skipped.append(mxc)
            return
        self.outcome.imported += 1


async def _find_manifest(rt: Runtime, import_id: str, parts: list[ImportPart]) -> Manifest | None:
    """Look at parts not yet searched; remember which one holds the manifest."""
    for part in parts:
        if part.has_manifest is False:
            continue
        async with _part_file(rt, part) as path:
            manifest = await asyncio.to_thread(find_manifest, path)
        async with rt.sessions() as session:
            await mark_import_part(session, import_id, part.part.index, has_manifest=manifest is not None)
            await session.commit()
        if manifest is not None:
            return manifest
    return None


WaitForParts = Callable[[], Awaitable[None]]


async def run_import(rt: Runtime, import_id: str, progress: Progress, wait_for_parts: WaitForParts
                     ) -> ImportOutcome:
    """Import every item of the manifest from the parts as they arrive.

    Ends once every manifest entry is recorded (or refused), or once the import is closed and
    every stored part has been read; `wait_for_parts` returns when a part may have arrived.
    """
    importer: _Importer | None = None
    while True:
        async with rt.sessions() as session:
            row = await get_import(session, import_id)
            if row is None:
                raise ImportNotFound(import_id)
            closed = row.closed
            parts = await import_parts(session, import_id)
        if importer is None:
            manifest = await _find_manifest(rt, import_id, parts)
            if manifest is not None:
                importer = _Importer(rt, manifest, progress)
                await importer.settle_present()
        if importer is not None:
            for part in parts:
                if importer.complete:
                    break
                if part.processed:
                    continue
                async with _part_file(rt, part) as path:
                    await importer.import_part(path)
                async with rt.sessions() as session:
                    await mark_import_part(session, import_id, part.part.index, processed=True)
                    await session.commit()
            if importer.complete:
                return importer.outcome
        if closed:
            break
        await wait_for_parts()
    if importer is None:
        raise ArchiveFormatError("the import was closed before any part held manifest.json")
    importer.outcome.missing = sorted(set(importer.manifest.media) - importer.settled)
    return importer.outcome


async def discard_parts(rt: Runtime, import_id: str) -> None:
    """Delete the stored parts of a finished import (objects shared with another part stay)."""
    async with rt.sessions() as session:
        parts = await import_parts(session, import_id)
        await delete_import(session, import_id)
        await session.commit()
    for part in parts:
        async with rt.sessions() as session:
            if await part_users(session, part.part.datastore_id, part.part.location):
                continue
        await rt.datastores.get(part.part.datastore_id).delete(part.part.location)
