"""File-datastore specifics: containment, atomic writes, copy fallback, readiness."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from shared.storage.base import DatastoreUnavailable, InvalidKey
from shared.storage.file import FileDatastore
from shared.storage.keys import content_key

KEY = content_key("ab" * 32)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_layout_and_mode(file_datastore: FileDatastore, tmp_path: Path) -> None:
    await file_datastore.put_file(KEY, write(tmp_path, b"data"), "text/plain")
    target = file_datastore.root / "ab" / "ab" / ("ab" * 32)
    assert all_files(file_datastore.root) == [target]
    assert target.stat().st_mode & 0o777 == 0o644


async def test_symlink_out_of_the_root_is_rejected(file_datastore: FileDatastore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (file_datastore.root / "link").symlink_to(outside)
    with pytest.raises(InvalidKey):
        await file_datastore.size("link/secret")
    with pytest.raises(InvalidKey):
        await file_datastore.put_file("link/new", write(tmp_path, b"x"), "text/plain")
    with pytest.raises(InvalidKey):
        await file_datastore.delete("link/secret")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


async def test_copies_when_hard_links_fail(
    file_datastore: FileDatastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    source = write(tmp_path, b"copied bytes")
    await file_datastore.put_file(KEY, source, "text/plain")
    stored = file_datastore.root / KEY
    assert stored.read_bytes() == b"copied bytes"
    assert not os.path.samefile(stored, source)


async def test_failed_write_leaves_no_object_and_no_temp(
    file_datastore: FileDatastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "no hard links here")

    def half_copy(src: str | Path, dst: str | Path) -> None:
        Path(dst).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(OSError, match="No space"):
        await file_datastore.put_file(KEY, write(tmp_path, b"data"), "text/plain")
    assert not await file_datastore.exists(KEY)
    assert all_files(file_datastore.root) == []


async def test_missing_source_file(file_datastore: FileDatastore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await file_datastore.put_file(KEY, tmp_path / "missing", "text/plain")
    assert all_files(file_datastore.root) == []


async def test_check_ready_fails_without_the_directory(file_datastore: FileDatastore) -> None:
    shutil.rmtree(file_datastore.root)
    with pytest.raises(DatastoreUnavailable):
        await file_datastore.check_ready()


async def test_check_ready_leaves_nothing(file_datastore: FileDatastore) -> None:
    await file_datastore.check_ready()
    assert list(file_datastore.root.iterdir()) == []


def test_root_is_created(tmp_path: Path) -> None:
    store = FileDatastore(id="x", kinds=frozenset({"all"}), path=tmp_path / "a" / "b")
    assert store.root.is_dir()
    assert store.public_url(KEY) is None


async def test_real_cross_filesystem_put(file_datastore: FileDatastore) -> None:
    """A spool dir on tmpfs and a datastore on disk: `os.link` fails with EXDEV for real."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == file_datastore.root.stat().st_dev:
        pytest.skip("needs /dev/shm on a different filesystem from the datastore")
    source = shm / f"mmr-test-{os.getpid()}-{id(file_datastore)}"
    source.write_bytes(b"from tmpfs")
    try:
        await file_datastore.put_file(KEY, source, "text/plain")
        assert (file_datastore.root / KEY).read_bytes() == b"from tmpfs"
        assert source.exists()
    finally:
        source.unlink()


async def test_move_renames_the_temp_file_into_place(
    file_datastore: FileDatastore, tmp_path: Path
) -> None:
    source = write(tmp_path, b"moved bytes")
    source.chmod(0o600)  # as spool files are
    inode = source.stat().st_ino
    stored = await file_datastore.put_file(KEY, source, "text/plain", move=True)
    target = file_datastore.root / KEY
    assert not source.exists()
    assert target.stat().st_ino == inode  # the same file: no bytes copied
    assert target.read_bytes() == b"moved bytes" and stored.size_bytes == 11
    assert target.stat().st_mode & 0o777 == 0o644
    assert all_files(file_datastore.root) == [target]


async def test_move_of_an_existing_key_leaves_the_temp_file(
    file_datastore: FileDatastore, tmp_path: Path
) -> None:
    await file_datastore.put_file(KEY, write(tmp_path, b"same"), "text/plain")
    source = tmp_path / "again.bin"
    source.write_bytes(b"same")
    await file_datastore.put_file(KEY, source, "text/plain", move=True)
    assert source.read_bytes() == b"same"  # the caller's to discard


async def test_move_across_filesystems_copies_and_keeps_the_temp_file_private(
    file_datastore: FileDatastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device)
    monkeypatch.setattr(os, "link", cross_device)
    source = write(tmp_path, b"copied bytes")
    source.chmod(0o600)
    await file_datastore.put_file(KEY, source, "text/plain", move=True)
    target = file_datastore.root / KEY
    assert target.read_bytes() == b"copied bytes"
    assert target.stat().st_mode & 0o777 == 0o644
    assert source.read_bytes() == b"copied bytes"
    assert source.stat().st_mode & 0o777 == 0o600
    assert all_files(file_datastore.root) == [target]
