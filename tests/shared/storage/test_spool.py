"""Spooling a stream to disk: correct hash and size, limits, and no temp file left behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from shared.storage.spool import (
    WRITE_BATCH_BYTES,
    WRITEV_MAX_CHUNKS,
    SpooledFile,
    SpoolTooLarge,
    spool_to_temp,
)
from tests.shared.storage.helpers import peak_traced_bytes

OWNER = "m0-p1-s1"


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


async def stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(0)


async def test_hash_and_size(spool_dir: Path) -> None:
    chunks = [os.urandom(n) for n in (1, 0, 65536, 3, 2 * 1024 * 1024, 17)]
    data = b"".join(chunks)
    spooled = await spool_to_temp(stream(chunks), spool_dir, max_bytes=None, owner_tag=OWNER)
    assert spooled.sha256 == hashlib.sha256(data).hexdigest()
    assert spooled.size_bytes == len(data)
    assert spooled.path.parent == spool_dir
    assert spooled.path.read_bytes() == data
    await spooled.discard()


async def test_empty_stream(spool_dir: Path) -> None:
    spooled = await spool_to_temp(stream([]), spool_dir, max_bytes=0, owner_tag=OWNER)
    assert (spooled.size_bytes, spooled.sha256) == (0, hashlib.sha256(b"").hexdigest())
    await spooled.discard()


async def test_exactly_at_the_limit_is_allowed(spool_dir: Path) -> None:
    spooled = await spool_to_temp(stream([b"a" * 60, b"b" * 40]), spool_dir, max_bytes=100, owner_tag=OWNER)
    assert spooled.size_bytes == 100
    await spooled.discard()


async def test_over_the_limit_raises_early_and_leaves_nothing(spool_dir: Path) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(SpoolTooLarge) as raised:
        await spool_to_temp(endless(), spool_dir, max_bytes=10_500, owner_tag=OWNER)
    assert raised.value.max_bytes == 10_500
    assert pulled == 11, "must stop reading as soon as the limit is crossed"
    assert list(spool_dir.iterdir()) == []


async def test_source_error_leaves_nothing(spool_dir: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(3 * 1024 * 1024)
        raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        await spool_to_temp(broken(), spool_dir, max_bytes=None, owner_tag=OWNER)
    assert list(spool_dir.iterdir()) == []


async def test_cancellation_leaves_nothing(spool_dir: Path) -> None:
    """A client disconnect cancels the request task mid-upload."""
    written_some = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for _ in range(3):  # > one write batch, so a real file write has happened
            yield os.urandom(1024 * 1024)
        written_some.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(spool_to_temp(stalls(), spool_dir, max_bytes=None, owner_tag=OWNER))
    await written_some.wait()
    await asyncio.sleep(0.05)
    assert len(list(spool_dir.iterdir())) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(spool_dir.iterdir()) == []


async def test_cancellation_during_a_write_leaves_nothing(spool_dir: Path) -> None:
    """Cancelled while a worker thread is writing: the file must still go."""

    async def fast() -> AsyncIterator[bytes]:
        while True:
            yield os.urandom(1024 * 1024)

    for delay in (0.001, 0.01, 0.03):
        task = asyncio.create_task(spool_to_temp(fast(), spool_dir, max_bytes=None, owner_tag=OWNER))
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)  # let any still running write thread finish
        assert list(spool_dir.iterdir()) == []


async def test_large_stream_uses_bounded_memory(spool_dir: Path) -> None:
    size, chunk = 64 * 1024 * 1024, 64 * 1024
    expected = hashlib.sha256()

    async def source() -> AsyncIterator[bytes]:
        for _ in range(size // chunk):
            data = os.urandom(chunk)
            expected.update(data)
            yield data

    spooled, peak = await peak_traced_bytes(
        spool_to_temp(source(), spool_dir, max_bytes=size, owner_tag=OWNER))
    async with spooled:
        assert spooled.size_bytes == size
        assert spooled.sha256 == expected.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"


async def test_context_manager_discards(spool_dir: Path) -> None:
    async with await spool_to_temp(stream([b"data"]), spool_dir, max_bytes=None, owner_tag=OWNER) as spooled:
        assert spooled.path.exists()
    assert not spooled.path.exists()


async def test_discard_is_idempotent(spool_dir: Path) -> None:
    spooled = await spool_to_temp(stream([b"data"]), spool_dir, max_bytes=None, owner_tag=OWNER)
    await spooled.discard()
    await spooled.discard()
    spooled.discard_sync()
    assert not spooled.path.exists()


def test_spooled_file_is_a_plain_dataclass(tmp_path: Path) -> None:
    spooled = SpooledFile(path=tmp_path / "gone", sha256="0" * 64, size_bytes=0)
    spooled.discard_sync()  # a missing file is fine


@pytest.mark.parametrize("extra", [b"", b"tail"])
async def test_hash_and_size_across_a_full_batch(spool_dir: Path, extra: bytes) -> None:
    # Exactly one batch of chunks, with or without more after it: the batch written in the
    # loop or the one written while finishing must both count once.
    chunks = [os.urandom(WRITE_BATCH_BYTES // 16) for _ in range(16)] + [extra]
    data = b"".join(chunks)
    async with await spool_to_temp(stream(chunks), spool_dir, max_bytes=None, owner_tag=OWNER) as spooled:
        assert spooled.sha256 == hashlib.sha256(data).hexdigest()
        assert spooled.path.read_bytes() == data


async def test_discard_after_the_file_was_moved_away(spool_dir: Path, tmp_path: Path) -> None:
    spooled = await spool_to_temp(stream([b"data"]), spool_dir, max_bytes=None, owner_tag=OWNER)
    spooled.path.rename(tmp_path / "stored")  # what a file datastore's move does
    await spooled.discard()
    assert (tmp_path / "stored").read_bytes() == b"data"


async def test_more_chunks_in_a_batch_than_one_writev_takes(spool_dir: Path) -> None:
    # A stream of tiny chunks (chunked encoding, a slow sender): more buffers than IOV_MAX.
    chunks = [bytes([i % 251]) * 3 for i in range(WRITEV_MAX_CHUNKS * 3)]
    data = b"".join(chunks)
    async with await spool_to_temp(stream(chunks), spool_dir, max_bytes=None,
                                  owner_tag=OWNER) as spooled:
        assert spooled.sha256 == hashlib.sha256(data).hexdigest()
        assert spooled.size_bytes == len(data)
        assert spooled.path.read_bytes() == data
