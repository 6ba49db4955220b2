"""Behaviour every datastore must share, run against the file and the S3 implementation alike."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.storage.base import (
    ByteRange,
    Datastore,
    InvalidKey,
    ObjectNotFound,
    RangeNotSatisfiable,
    StoredObject,
)
from shared.storage.keys import content_key
from tests.shared.storage.helpers import peak_traced_bytes

DATA = os.urandom(100_000)
KEY = content_key(hashlib.sha256(DATA).hexdigest())


def write(tmp_path: Path, data: bytes, name: str = "upload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def read_all(
    store: Datastore, key: str, byte_range: ByteRange | None = None, chunk_size: int = 65536
) -> bytes:
    return b"".join([c async for c in store.open_stream(key, byte_range, chunk_size)])


@pytest.fixture
async def stored(datastore: Datastore, tmp_path: Path) -> Datastore:
    """The datastore with `DATA` stored at `KEY`."""
    await datastore.put_file(KEY, write(tmp_path, DATA), "application/octet-stream")
    return datastore


def test_implements_protocol(datastore: Datastore) -> None:
    assert isinstance(datastore, Datastore)


async def test_put_then_read_back(datastore: Datastore, tmp_path: Path) -> None:
    source = write(tmp_path, DATA)
    stored = await datastore.put_file(KEY, source, "image/png")
    assert stored == StoredObject(datastore_id=datastore.id, location=KEY, size_bytes=len(DATA))
    assert await datastore.exists(KEY)
    assert await datastore.size(KEY) == len(DATA)
    assert await read_all(datastore, KEY) == DATA
    assert source.read_bytes() == DATA, "put_file must leave the source file in place"


async def test_stream_respects_chunk_size(stored: Datastore) -> None:
    chunks = [c async for c in stored.open_stream(KEY, chunk_size=1000)]
    assert b"".join(chunks) == DATA
    assert all(0 < len(c) <= 1000 for c in chunks)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(0, 0, id="first-byte"),
        pytest.param(0, 9, id="prefix"),
        pytest.param(12_345, 54_321, id="middle"),
        pytest.param(90_000, len(DATA) - 1, id="suffix"),
        pytest.param(len(DATA) - 1, len(DATA) - 1, id="last-byte"),
        pytest.param(0, len(DATA) - 1, id="whole"),
        pytest.param(len(DATA) - 5, len(DATA) + 100, id="end-past-size-is-clamped"),
    ],
)
async def test_stream_range(stored: Datastore, start: int, end: int) -> None:
    chunks = [c async for c in stored.open_stream(KEY, ByteRange(start, end), chunk_size=7_000)]
    assert b"".join(chunks) == DATA[start : end + 1]
    assert all(len(c) <= 7_000 for c in chunks)


async def test_range_starting_past_the_end_is_not_satisfiable(stored: Datastore) -> None:
    with pytest.raises(RangeNotSatisfiable):
        await read_all(stored, KEY, ByteRange(len(DATA), len(DATA) + 10))


async def test_reversed_range_is_rejected(stored: Datastore) -> None:
    with pytest.raises(ValueError):
        await read_all(stored, KEY, ByteRange(10, 5))


async def test_empty_object(datastore: Datastore, tmp_path: Path) -> None:
    key = content_key(hashlib.sha256(b"").hexdigest())
    stored = await datastore.put_file(key, write(tmp_path, b""), "text/plain")
    assert stored.size_bytes == 0
    assert await datastore.size(key) == 0
    assert await read_all(datastore, key) == b""


async def test_delete(stored: Datastore) -> None:
    await stored.delete(KEY)
    assert not await stored.exists(KEY)
    with pytest.raises(ObjectNotFound):
        await stored.size(KEY)
    await stored.delete(KEY)  # already gone: not an error


async def test_put_of_existing_key_is_a_noop(stored: Datastore, tmp_path: Path) -> None:
    other = write(tmp_path, b"different bytes", name="other.bin")
    result = await stored.put_file(KEY, other, "application/octet-stream")
    assert result.size_bytes == len(DATA)
    assert await read_all(stored, KEY) == DATA


async def test_concurrent_puts_of_the_same_content(datastore: Datastore, tmp_path: Path) -> None:
    sources = [write(tmp_path, DATA, name=f"copy-{i}.bin") for i in range(5)]
    results = await asyncio.gather(*(datastore.put_file(KEY, s, "application/octet-stream") for s in sources))
    assert {r.size_bytes for r in results} == {len(DATA)}
    assert await read_all(datastore, KEY) == DATA


async def test_missing_key(datastore: Datastore) -> None:
    missing = content_key("0" * 64)
    assert not await datastore.exists(missing)
    with pytest.raises(ObjectNotFound):
        await datastore.size(missing)
    with pytest.raises(ObjectNotFound):
        await read_all(datastore, missing)
    with pytest.raises(ObjectNotFound):
        await read_all(datastore, missing, ByteRange(0, 10))
    await datastore.delete(missing)


async def test_fan_out_directory_is_not_an_object(stored: Datastore) -> None:
    """`ab/cd` exists as a directory on file stores; it must not look like an object."""
    prefix = KEY.rsplit("/", 1)[0]
    assert not await stored.exists(prefix)
    with pytest.raises(ObjectNotFound):
        await stored.size(prefix)
    with pytest.raises(ObjectNotFound):
        await read_all(stored, prefix)


async def test_abandoned_stream_does_not_break_the_store(stored: Datastore) -> None:
    stream = stored.open_stream(KEY, chunk_size=1024)
    first = await anext(stream)
    assert first == DATA[:1024]
    await stream.aclose()  # type: ignore[attr-defined]
    assert await read_all(stored, KEY) == DATA


UNSAFE_KEYS = [
    "../escape",
    "ab/../../escape",
    "ab/cd/..",
    "/etc/passwd",
    "",
    "ab//cd",
    "ab/cd/",
    ".hidden",
    "ab\\cd",
    "ab/\x00cd",
    "ab/cd\n",
    "x" * 600,
]


def _operations(
    store: Datastore, key: str, source: Path
) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    async def public_url() -> object:
        return store.public_url(key)

    return [
        ("put_file", lambda: store.put_file(key, source, "text/plain")),
        ("exists", lambda: store.exists(key)),
        ("size", lambda: store.size(key)),
        ("open_stream", lambda: read_all(store, key)),
        ("open_stream-range", lambda: read_all(store, key, ByteRange(0, 1))),
        ("delete", lambda: store.delete(key)),
        ("public_url", public_url),
    ]


@pytest.mark.parametrize("key", UNSAFE_KEYS, ids=repr)
async def test_unsafe_keys_are_rejected_everywhere(datastore: Datastore, tmp_path: Path, key: str) -> None:
    source = write(tmp_path, b"attack")
    for name, operation in _operations(datastore, key, source):
        with pytest.raises(InvalidKey):
            await operation()
            pytest.fail(f"{name} accepted {key!r}")
    assert not (tmp_path / "escape").exists()


async def test_check_ready(datastore: Datastore) -> None:
    await datastore.check_ready()


async def test_large_object_round_trip_in_bounded_memory(datastore: Datastore, tmp_path: Path) -> None:
    """200 MiB through put and stream: multipart on S3, and never whole in memory."""
    size = 200 * 1024 * 1024
    source, digest = _write_random_file(tmp_path / "big.bin", size)
    key = content_key(digest)

    async def round_trip() -> tuple[int, str]:
        await datastore.put_file(key, source, "video/mp4")
        hasher, total = hashlib.sha256(), 0
        async for chunk in datastore.open_stream(key, chunk_size=1024 * 1024):
            hasher.update(chunk)
            total += len(chunk)
        return total, hasher.hexdigest()

    (total, read_digest), peak = await peak_traced_bytes(round_trip())
    assert (total, read_digest) == (size, digest)
    assert await datastore.size(key) == size
    assert peak < 16 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"


def _write_random_file(path: Path, size: int) -> tuple[Path, str]:
    """Write incompressible bytes in 1 MiB blocks (never the whole file in memory)."""
    hasher = hashlib.sha256()
    block = 1024 * 1024
    with path.open("wb") as out:
        for _ in range(size // block):
            data = os.urandom(block)
            hasher.update(data)
            out.write(data)
    return path, hasher.hexdigest()
