"""A datastore that keeps objects as files under a local (or mounted) directory."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from shared.storage.base import (
    ByteRange,
    DatastoreUnavailable,
    InvalidKey,
    ListedObject,
    ObjectNotFound,
    RangeNotSatisfiable,
    StoredObject,
)
from shared.storage.keys import is_content_key, validate_key

OBJECT_MODE = 0o644
"""Objects are made world-readable whether they were hard-linked (spool files are 0600) or
copied (umask dependent), so every object has the same mode and a separate web server can
serve the directory."""

_MISSING_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError)
"""What `open`/`stat` raise when a key names nothing, or a fan-out directory, not an object."""


class FileDatastore:
    """Objects live at `<root>/<key>`; keys come from `shared.storage.keys`.

    Writes are atomic (temp file in the target directory, then `os.replace`), so a reader never
    sees a half-written object and concurrent puts of the same content are harmless. All
    blocking filesystem work runs in worker threads.
    """

    type = "file"

    def __init__(self, id: str, kinds: frozenset[str], path: Path, temp_tag: str = "") -> None:
        self.id = id
        self.kinds = frozenset(kinds)
        # In temp names, so that a crashed writer's successor finds its partial objects.
        self.temp_tag = temp_tag
        path.mkdir(parents=True, exist_ok=True)
        self.root = path.resolve()
        self.local_root: Path | None = self.root
        self.uri = str(self.root)

    def check_key(self, key: str) -> None:
        """Raise `InvalidKey` unless `key` resolves inside the root (symlinks followed: a few
        lstat calls the kernel answers from its cache)."""
        self._resolve(key)

    def _resolve(self, key: str) -> Path:
        """The file for `key`, refusing anything that resolves outside the root (e.g. symlinks)."""
        validate_key(key)
        target = (self.root / key).resolve()
        if target == self.root or not target.is_relative_to(self.root):
            raise InvalidKey(f"key {key!r} resolves outside datastore {self.id!r}")
        return target

    async def put_file(
        self, key: str, path: Path, content_type: str, *, move: bool = False
    ) -> StoredObject:
        """Store `path` at `key`; a no-op if the key already exists. With `move` the file is
        renamed into place when it is on the same filesystem (no bytes copied, nothing left to
        delete), else it is hard-linked or copied and left where it was."""
        validate_key(key)
        size = await asyncio.to_thread(self._put_sync, key, path, move)
        return StoredObject(datastore_id=self.id, location=key, size_bytes=size)

    def _put_sync(self, key: str, source: Path, move: bool = False) -> int:
        target = self._resolve(key)
        with contextlib.suppress(FileNotFoundError):
            return _regular_file_size(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        if move and _moved_into_place(source, target):
            _fsync_path(target.parent)
            return target.stat().st_size
        # A leading dot can never be a valid key, so temp files never collide with objects.
        owner = f"{self.temp_tag}-" if self.temp_tag else ""
        temp = target.parent / f".{target.name}.{owner}{uuid.uuid4().hex}.tmp"
        try:
            _link_or_copy(source, temp)
            os.chmod(temp, OBJECT_MODE)
            _fsync_path(temp)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_path(target.parent)
        return target.stat().st_size

    async def exists(self, key: str) -> bool:
        validate_key(key)
        return await asyncio.to_thread(self._exists_sync, key)

    def _exists_sync(self, key: str) -> bool:
        return self._resolve(key).is_file()

    async def size(self, key: str) -> int:
        validate_key(key)
        return await asyncio.to_thread(self._size_sync, key)

    def _size_sync(self, key: str) -> int:
        try:
            return _regular_file_size(self._resolve(key))
        except _MISSING_ERRORS as exc:
            raise ObjectNotFound(key) from exc

    async def open_stream(
        self, key: str, byte_range: ByteRange | None = None, chunk_size: int = 65536
    ) -> AsyncIterator[bytes]:
        """Read the object in chunks, never all at once. The first worker-thread hop opens the
        file and reads the first chunk, so an object no bigger than `chunk_size` costs one."""
        validate_key(key)
        _check_stream_args(byte_range, chunk_size)
        file, remaining, chunk = await asyncio.to_thread(self._open_and_read_sync, key,
                                                         byte_range, chunk_size)
        try:
            while chunk:
                remaining -= len(chunk)
                yield chunk
                if remaining <= 0:
                    break
                chunk = await asyncio.to_thread(file.read, min(chunk_size, remaining))
        finally:
            file.close()

    def _open_and_read_sync(
        self, key: str, byte_range: ByteRange | None, chunk_size: int
    ) -> tuple[BinaryIO, int, bytes]:
        file, remaining = self._open_sync(key, byte_range)
        try:
            return file, remaining, file.read(min(chunk_size, remaining)) if remaining > 0 else b""
        except BaseException:
            file.close()
            raise

    def _open_sync(self, key: str, byte_range: ByteRange | None) -> tuple[BinaryIO, int]:
        """Open the object positioned at the range start; return it and the bytes to read."""
        try:
            file: BinaryIO = open(self._resolve(key), "rb", buffering=0)  # noqa: SIM115
        except _MISSING_ERRORS as exc:
            raise ObjectNotFound(key) from exc
        try:
            size = os.fstat(file.fileno()).st_size
            if byte_range is None:
                return file, size
            if byte_range.start >= size:
                raise RangeNotSatisfiable(f"range starts at {byte_range.start}, size is {size}")
            file.seek(byte_range.start)
            return file, min(byte_range.end, size - 1) - byte_range.start + 1
        except BaseException:
            file.close()
            raise

    async def delete(self, key: str) -> None:
        validate_key(key)
        await asyncio.to_thread(self._delete_sync, key)

    def _delete_sync(self, key: str) -> None:
        with contextlib.suppress(*_MISSING_ERRORS):
            self._resolve(key).unlink()

    async def list_content_objects(self, after: str | None = None) -> AsyncIterator[ListedObject]:
        """Walk the two fan-out levels in order, one directory per worker-thread hop."""
        for first in await asyncio.to_thread(_sorted_hex_dirs, self.root):
            if after is not None and first < after[:2]:
                continue
            for second in await asyncio.to_thread(_sorted_hex_dirs, self.root / first):
                prefix = f"{first}/{second}/"
                if after is not None and prefix[:5] < after[:5]:
                    continue
                for found in await asyncio.to_thread(_content_files, self.root, prefix):
                    if after is None or found.key > after:
                        yield found

    async def sweep_partials(self, older_than: float, dry_run: bool) -> tuple[int, int]:
        return await asyncio.to_thread(self._sweep_partials_sync, older_than, dry_run)

    def _sweep_partials_sync(self, older_than: float, dry_run: bool) -> tuple[int, int]:
        count = size = 0
        for path in self.root.glob("*/*/.*.tmp"):
            try:
                info = path.lstat()
                if info.st_mtime >= older_than:
                    continue
                if not dry_run:
                    path.unlink()
            except FileNotFoundError:
                continue
            count, size = count + 1, size + info.st_size
        return count, size

    async def check_ready(self) -> None:
        """Prove the root exists and is writable by creating and removing a probe file.

        A real write rather than `os.access`, which says yes to root on a read-only mount.
        """
        try:
            await asyncio.to_thread(self._probe_write)
        except OSError as exc:
            raise DatastoreUnavailable(f"file datastore {self.id!r} at {self.root}: {exc}") from exc

    def _probe_write(self) -> None:
        if not self.root.is_dir():
            raise NotADirectoryError(f"{self.root} is not a directory")
        fd, name = tempfile.mkstemp(dir=self.root, prefix=".ready-", suffix=".tmp")
        os.close(fd)
        os.unlink(name)

    async def local_path(self, key: str) -> Path | None:
        """The object's own file (readers only: objects are immutable)."""
        return await asyncio.to_thread(self._local_path_sync, key)

    def _local_path_sync(self, key: str) -> Path | None:
        path = self._resolve(key)
        return path if path.is_file() else None

    def public_url(self, key: str) -> str | None:
        validate_key(key)
        return None

    def object_url(self, key: str) -> str | None:
        return None

    async def close(self) -> None:
        return None


def _sorted_hex_dirs(path: Path) -> list[str]:
    try:
        names = [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if len(n) == 2 and all(c in "0123456789abcdef" for c in n))


def _content_files(root: Path, prefix: str) -> list[ListedObject]:
    found = []
    try:
        entries = list(os.scandir(root / prefix))
    except FileNotFoundError:
        return []
    for entry in entries:
        key = prefix + entry.name
        if not is_content_key(key) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        found.append(ListedObject(key, info.st_size, info.st_mtime))
    return sorted(found, key=lambda o: o.key)


def _check_stream_args(byte_range: ByteRange | None, chunk_size: int) -> None:
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if byte_range is not None:
        byte_range.check()


def _regular_file_size(path: Path) -> int:
    """Size of a regular file; anything else (a fan-out directory) counts as not found."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise IsADirectoryError(str(path))
    return info.st_size


def _moved_into_place(source: Path, target: Path) -> bool:
    """Make the caller's temp file the object: its bytes reach the disk first (fsync), then one
    rename gives them the key, so the key never names a half-written file even after a crash.

    False, with `source` untouched, when a rename cannot do it (EXDEV: the temp folder is on
    another filesystem; or the filesystem refuses): the caller copies instead. Another writer's
    rename of the same content-addressed key first is harmless, the bytes are the same.
    """
    fd = os.open(source, os.O_RDONLY)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        # Before the rename, so that the object never exists with the temp file's mode (0600).
        os.fchmod(fd, OBJECT_MODE)
        os.fsync(fd)
        try:
            os.rename(source, target)
        except OSError as exc:
            if exc.errno not in _NO_RENAME_ERRNOS:
                raise
            os.fchmod(fd, mode)  # the temp file stays the caller's, as private as it was
            return False
    finally:
        os.close(fd)
    return True


_NO_RENAME_ERRNOS = frozenset({errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EACCES})
"""Why a rename into the datastore may fail where a copy works: another filesystem, or one
(or a mount) that refuses renames from there."""


def _link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link when possible (same filesystem: no data copied), else copy the bytes."""
    try:
        os.link(source, dest)
    except OSError:
        # EXDEV (another filesystem), EPERM/ENOTSUP (no hard links), EMLINK: copy instead.
        # A missing source fails again, with the right error, in the copy.
        shutil.copyfile(source, dest)


def _fsync_path(path: Path) -> None:
    """fsync a file or directory so the object (or its name) survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
