"""Write a v2 archive as parts fill, streaming each item's bytes straight into its tar member.

Memory stays bounded whatever the export's size: an item's bytes go from the datastore stream
into the current part's gzip'd tar in batches, on worker threads, and only one part exists on
disk at a time (handed to the sink as soon as it is full, then removed). A part is full once its
members' bytes reach `archiving.targetBytesPerPart`, as in MMR, but the next part is only begun
when there is something to put in it, so no export ends with an empty media part.

Parts are deterministic: the tar and gzip timestamps come from the media and the export's
creation time, never from the clock, so a part rebuilt after a crash has the same bytes (and so
the same content-addressed key) as the first attempt.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import tarfile
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from shared.archive.format import (
    INDEX_MEMBER,
    MANIFEST_MEMBER,
    MANIFEST_PART_NAME,
    PART_SUFFIX,
    ManifestRecord,
    manifest_json_chunks,
    member_name,
    part_stem,
)
from shared.archive.pages import index_html_chunks

BLOCK = 512
COMPRESS_LEVEL = 0
"""Stored (uncompressed) deflate blocks: media is mostly compressed already (JPEG, MP4, ...), and
deflating it costs about ten times the CPU of the rest of an export for nothing. The result is
still a plain gzip file, read by MMR, `tar xzf` and 7-Zip alike."""
WRITE_BATCH_BYTES = 1024 * 1024


class ArchiveSizeMismatch(Exception):
    """An item's stream did not have the size its tar header announced."""


@dataclass(frozen=True)
class ArchivedMedia:
    """One item to archive and what the manifest says about it."""

    origin: str
    media_id: str
    upload_name: str | None
    content_type: str | None
    user_id: str | None
    creation_ts: int
    size_bytes: int
    s3_url: str = ""


@dataclass
class FinishedPart:
    """A complete part in a temp file; the writer deletes the file once the sink returns."""

    index: int
    file_name: str
    path: Path
    size_bytes: int
    sha256: str
    records: list[ManifestRecord] = field(default_factory=list)
    is_manifest: bool = False


PartSink = Callable[[FinishedPart], Awaitable[None]]


class _HashingFile:
    """The temp file under the gzip stream, hashing the compressed bytes as they are written."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.hash.update(view)
        self.size += len(view)
        return self.raw.write(view)

    def flush(self) -> None:
        self.raw.flush()


class _PartFile:
    """One gzip'd tar being written to a temp file. Only ever used from one thread at a time."""

    def __init__(self, temp_dir: Path, temp_tag: str, stem: str, mtime: int) -> None:
        # The owner's tag in the name: a killed exporter's successor sweeps the part.
        fd, name = tempfile.mkstemp(dir=temp_dir, prefix=f"export-{temp_tag}-",
                                    suffix=PART_SUFFIX + ".tmp")
        self.path = Path(name)
        self._out = _HashingFile(os.fdopen(fd, "wb"))
        self._gz = gzip.GzipFile(filename=stem + ".tar", mode="wb", fileobj=self._out,
                                 mtime=mtime, compresslevel=COMPRESS_LEVEL)
        self.data_bytes = 0
        self.records: list[ManifestRecord] = []

    def begin_member(self, name: str, size: int, mtime: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
        self._gz.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def write(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self._gz.write(chunk)

    def end_member(self, size: int) -> None:
        if size % BLOCK:
            self._gz.write(b"\0" * (BLOCK - size % BLOCK))
        self.data_bytes += size

    def add_member(self, name: str, chunks: Iterator[bytes], mtime: int, temp_dir: Path) -> None:
        """A member whose size is only known once produced (manifest, index): spooled first."""
        with tempfile.TemporaryFile(dir=temp_dir) as spool:
            for chunk in chunks:
                spool.write(chunk)
            size = spool.tell()
            spool.seek(0)
            self.begin_member(name, size, mtime)
            while block := spool.read(WRITE_BATCH_BYTES):
                self._gz.write(block)
            self.end_member(size)

    def close(self) -> tuple[str, int]:
        """End the tar, flush everything to disk; the part's SHA-256 and size."""
        self._gz.write(b"\0" * (2 * BLOCK))
        self._gz.close()
        self._out.raw.flush()
        os.fsync(self._out.raw.fileno())
        self._out.raw.close()
        return self._out.hash.hexdigest(), self._out.size

    def discard(self) -> None:
        try:
            self._gz.close()
            self._out.raw.close()
        finally:
            self.path.unlink(missing_ok=True)


class ArchiveWriter:
    """Appends items to numbered parts, hands each full part to `sink`, ends with the manifest."""

    def __init__(
        self,
        *,
        entity: str,
        created_ts: int,
        target_bytes_per_part: int,
        temp_dir: Path,
        temp_tag: str,
        sink: PartSink,
        first_index: int = 1,
    ) -> None:
        self.entity = entity
        self.created_ts = created_ts
        self.target = target_bytes_per_part
        self.temp_dir = temp_dir
        self.temp_tag = temp_tag
        self._sink = sink
        self._next_index = first_index
        self._part: _PartFile | None = None
        self._part_index = 0

    async def append(self, media: ArchivedMedia, chunks: AsyncIterator[bytes]) -> ManifestRecord:
        """Stream one item into the current part; persist the part if that filled it."""
        part = await self._current_part()
        name = member_name(media.origin, media.media_id, media.content_type)
        size = media.size_bytes
        await asyncio.to_thread(part.begin_member, name, size, media.creation_ts // 1000)
        digest = hashlib.sha256()
        written = 0
        batch: list[bytes] = []
        batch_bytes = 0
        async for chunk in chunks:
            written += len(chunk)
            if written > size:
                raise ArchiveSizeMismatch(f"{media.origin}/{media.media_id} is larger than {size} bytes")
            digest.update(chunk)
            batch.append(chunk)
            batch_bytes += len(chunk)
            if batch_bytes >= WRITE_BATCH_BYTES:
                await asyncio.to_thread(part.write, batch)
                batch, batch_bytes = [], 0
        if written != size:
            raise ArchiveSizeMismatch(f"{media.origin}/{media.media_id}: {written} bytes, expected {size}")
        if batch:
            await asyncio.to_thread(part.write, batch)
        await asyncio.to_thread(part.end_member, size)
        record = ManifestRecord(
            file_name=media.upload_name or "", archived_name=name, size_bytes=size,
            content_type=media.content_type or "", s3_url=media.s3_url, sha256=digest.hexdigest(),
            origin=media.origin, media_id=media.media_id, created_ts=media.creation_ts,
            uploader=media.user_id or "",
        )
        part.records.append(record)
        if part.data_bytes >= self.target:
            await self._persist(is_manifest=False, name=None)
        return record

    async def finish(self, records: Callable[[], Awaitable[list[ManifestRecord]]]) -> None:
        """Persist the open part, then the manifest part listing `await records()`: every item,
        asked for once the last media part is persisted (so it can come from storage)."""
        if self._part is not None:
            await self._persist(is_manifest=False, name=None)
        everything = await records()
        part = await self._current_part(stem=MANIFEST_PART_NAME)
        mtime = self.created_ts // 1000
        manifest = manifest_json_chunks(self.entity, self.created_ts, iter(everything))
        await asyncio.to_thread(part.add_member, MANIFEST_MEMBER, manifest, mtime, self.temp_dir)
        index = index_html_chunks(self.entity, everything)
        await asyncio.to_thread(part.add_member, INDEX_MEMBER, index, mtime, self.temp_dir)
        await self._persist(is_manifest=True, name=MANIFEST_PART_NAME + PART_SUFFIX)

    async def discard(self) -> None:
        """Drop the unfinished part (an aborted export); safe to call at any time."""
        part, self._part = self._part, None
        if part is not None:
            await asyncio.to_thread(part.discard)

    async def _current_part(self, stem: str | None = None) -> _PartFile:
        if self._part is None:
            self._part_index = self._next_index
            self._next_index += 1
            self._part = await asyncio.to_thread(
                _PartFile, self.temp_dir, self.temp_tag, stem or part_stem(self._part_index),
                self.created_ts // 1000
            )
        return self._part

    async def _persist(self, *, is_manifest: bool, name: str | None) -> None:
        part = self._part
        assert part is not None
        self._part = None
        try:
            sha256, size = await asyncio.to_thread(part.close)
            finished = FinishedPart(
                index=self._part_index, file_name=name or part_stem(self._part_index) + PART_SUFFIX,
                path=part.path, size_bytes=size, sha256=sha256, records=part.records,
                is_manifest=is_manifest,
            )
            await self._sink(finished)
        finally:
            await asyncio.to_thread(part.path.unlink, True)
