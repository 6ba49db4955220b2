"""Spool an incoming byte stream to a temp file while hashing it.

Uploads and remote downloads must be hashed before they can be stored (keys are content
addressed) and must never be buffered in RAM (a large upload would cost its size in memory). So
the stream goes to disk in bounded batches, with the hashing and writing done off the event
loop, and the temp file is removed on every failure path, including a client disconnect
(`asyncio.CancelledError`).

Chunks are hashed on the loop as they arrive, and each batch is written with one `writev` in one
worker-thread hop; the last batch is written and the file closed in the same hop, so a body of up
to `WRITE_BATCH_BYTES` costs one hop. Hashing chunk by chunk in the thread would give up and take
back the GIL twice per chunk, which on a busy process costs more CPU (futex waits, context
switches) than the hashing itself; hashing the batch there meant joining it into one block first
(a fresh 1 MiB allocation, its page faults and a copy per batch). On the loop the GIL is released
and taken back uncontended, and a 64 KiB chunk hashes in well under a tenth of a millisecond.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

WRITE_BATCH_BYTES = 1024 * 1024
"""Chunks are collected up to this size before one thread hop writes them: fewer hops than one
per chunk, and at most this much (plus one chunk) is held in memory."""
WRITEV_MAX_CHUNKS = 512
"""More chunks than this in a batch (a stream of tiny chunks) are joined first: `writev` takes
at most IOV_MAX (1024 on Linux) buffers."""


class SpoolTooLarge(Exception):
    """The stream sent more than `max_bytes`; raised as soon as the limit is crossed."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"stream is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


@dataclass
class SpooledFile:
    """A finished temp file and what was learned while writing it.

    The caller owns the file: `discard` it (or use `async with`) once it has been stored.
    """

    path: Path
    sha256: str
    size_bytes: int
    # A temp file its owner discards once stored, so the media writer may move it into a file
    # datastore instead of copying it (`shared.media.store.HashedFile`).
    disposable: bool = True

    def discard_sync(self) -> None:
        """Delete the temp file; already gone is fine (discard may run twice)."""
        self.path.unlink(missing_ok=True)

    async def discard(self) -> None:
        """Delete the temp file without blocking the loop on a slow disk."""
        # Moved into a datastore (the usual end of an upload): nothing to delete, so no thread
        # hop. The check is one lstat in our own temp folder, like the mkstemp that made it.
        if not os.path.lexists(self.path):
            return
        try:
            await asyncio.to_thread(self.discard_sync)
        except asyncio.CancelledError:
            # The thread may not have run yet; make sure the file goes anyway.
            self.discard_sync()
            raise

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.discard()


class _SpoolWriter:
    """The temp file plus the running hash: chunks are hashed on the loop (`hash`), the file is
    written only from worker threads.

    A lock serialises a possibly still running write with `abort`: after a cancellation the
    worker thread cannot be stopped, so abort waits for it instead of closing the file under it.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def create(cls, temp_dir: Path, owner_tag: str) -> _SpoolWriter:
        prefix = f"spool-{owner_tag}-" if owner_tag else "spool-"
        fd, name = tempfile.mkstemp(dir=temp_dir, prefix=prefix, suffix=".part")
        return cls(Path(name), fd)

    def hash(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def write(self, chunks: list[bytes]) -> None:
        """Write `chunks` in order (one `writev` each time, as many as a short write needs)."""
        if len(chunks) > WRITEV_MAX_CHUNKS:
            chunks = [b"".join(chunks)]
        with self._lock:
            if self._closed:
                return
            _write_all(self._fd, chunks)

    def finish(self, last: list[bytes]) -> None:
        """Write `last`, close the file."""
        if last:
            self.write(last)
        with self._lock:
            # After an abort the descriptor is closed, and its number may belong to another file.
            if not self._closed:
                self._closed = True
                os.close(self._fd)

    def digest(self) -> str:
        return self._hash.hexdigest()

    def abort(self) -> None:
        """Close and delete the file. Synchronous so that a second cancellation cannot skip it."""
        with self._lock:
            try:
                if not self._closed:
                    self._closed = True
                    os.close(self._fd)
            finally:
                self.path.unlink(missing_ok=True)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    pending: list[bytes | memoryview] = list(chunks)
    while pending:
        written = os.writev(fd, pending)
        if written == 0:
            raise OSError(f"writev wrote nothing of {sum(map(len, pending))} bytes")
        # A short write (a full disk is reported by the next call): drop what went, go on.
        while pending and written >= len(pending[0]):
            written -= len(pending[0])
            pending.pop(0)
        if written:
            pending[0] = memoryview(pending[0])[written:]


async def spool_to_temp(
    chunks: AsyncIterator[bytes], temp_dir: Path, max_bytes: int | None, owner_tag: str
) -> SpooledFile:
    """Write `chunks` to a new temp file in `temp_dir`, returning its path, SHA-256 and size.

    Raises `SpoolTooLarge` as soon as more than `max_bytes` have arrived (None means no limit).
    On any exception the temp file is deleted before the exception propagates. `owner_tag`
    (`Runtime.temp_tag`) goes into the name, so the process's successor can sweep it after a
    crash (`shared.storage.leftovers`); it has no default, so that no caller forgets it (an
    untagged spool outlives a `kill -9` for good).
    """
    # Created inline, not in a thread: a cancellation while awaiting a thread that creates the
    # file would leak it, and creating an empty file is a quick syscall.
    writer = _SpoolWriter.create(temp_dir, owner_tag)
    try:
        size, last = await _pump(chunks, writer, max_bytes)
        await asyncio.to_thread(writer.finish, last)
    except BaseException:
        writer.abort()
        raise
    return SpooledFile(path=writer.path, sha256=writer.digest(), size_bytes=size)


async def _pump(
    chunks: AsyncIterator[bytes], writer: _SpoolWriter, max_bytes: int | None
) -> tuple[int, list[bytes]]:
    """Move the stream into `writer` in batches; return the total size and the last batch,
    still unwritten (`finish` writes it in the hop that closes the file)."""
    size = 0
    batch: list[bytes] = []
    batch_bytes = 0
    async for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise SpoolTooLarge(max_bytes)
        writer.hash(chunk)
        # A full batch is written only once more follows: the last one goes with `finish`.
        if batch_bytes >= WRITE_BATCH_BYTES:
            await asyncio.to_thread(writer.write, batch)
            batch, batch_bytes = [], 0
        batch.append(chunk)
        batch_bytes += len(chunk)
    return size, batch
