"""The datastore seam: every byte of media goes through a `Datastore`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range `[start, end]` of an object, already clamped to its size."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def check(self) -> None:
        """Raise `ValueError` for a range no datastore could serve (negative or reversed).

        Datastores call this before touching storage so a bad range fails the same way everywhere.
        """
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid byte range {self.start}-{self.end}")


@dataclass(frozen=True)
class StoredObject:
    """Where an object lives: the datastore that holds it and its key (location) inside it."""

    datastore_id: str
    location: str
    size_bytes: int


@dataclass(frozen=True)
class ListedObject:
    """One object found by `list_content_objects`: its key, size and last write (unix seconds)."""

    key: str
    size_bytes: int
    modified: float


@runtime_checkable
class Datastore(Protocol):
    """A place that stores immutable objects by key.

    Keys are content addressed (see `shared.storage.keys`), so a put of an existing key is a no-op
    and two writers of the same bytes cannot corrupt each other.
    """

    id: str
    kinds: frozenset[str]
    # The config's `type` ("file", "s3") and where the objects are (MMR's datastore `uri`: the
    # folder, or `s3://{endpoint host}/{bucket}`), for operators' listings.
    type: str
    uri: str
    # The folder holding the objects when they are files on this machine, else None.
    local_root: Path | None

    async def put_file(
        self, key: str, path: Path, content_type: str, *, move: bool = False
    ) -> StoredObject:
        """Store the file at `path` (a finished temp file) under `key`.

        The file is left in place; the caller discards it. With `move` (the caller would discard
        it right after) a datastore may take the file itself instead of copying it, so it may be
        gone afterwards; discarding must then find nothing to delete.
        """
        ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int:
        """Size in bytes; raises `ObjectNotFound` when absent."""
        ...

    def open_stream(
        self, key: str, byte_range: ByteRange | None = None, chunk_size: int = 65536
    ) -> AsyncIterator[bytes]:
        """Stream the object (or one byte range of it) in chunks of at most `chunk_size`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; absent objects are not an error."""
        ...

    async def check_ready(self) -> None:
        """Raise if the datastore cannot be reached or written."""
        ...

    def public_url(self, key: str) -> str | None:
        """A URL clients may be redirected to, or None when the datastore has none."""
        ...

    def object_url(self, key: str) -> str | None:
        """Where the object is on its server (MMR's `s3_url` of an exported item; not for
        clients), or None for a datastore without URLs."""
        ...

    async def local_path(self, key: str) -> Path | None:
        """The object as a file on this machine that may be read (never written) in place, or
        None when the datastore has no local files (then stream it with `open_stream`)."""
        ...

    def list_content_objects(self, after: str | None = None) -> AsyncIterator[ListedObject]:
        """Every object under a content key (`shared.storage.keys.is_content_key`), in key order,
        starting after `after`: what an orphan sweep may judge (other keys are not ours to)."""
        ...

    async def sweep_partials(self, older_than: float, dry_run: bool) -> tuple[int, int]:
        """Remove half-written objects begun before `older_than` (unix seconds) by any process:
        a file datastore's temp files, an S3 bucket's incomplete multipart uploads. Returns how
        many and their bytes (as far as known); `dry_run` only counts."""
        ...

    async def close(self) -> None: ...


class ObjectNotFound(Exception):
    """The key is not in the datastore."""


class InvalidKey(ValueError):
    """The key is not a safe object key (see `shared.storage.keys.validate_key`).

    A `ValueError` so callers that already treat bad input as a client error keep working.
    """


class RangeNotSatisfiable(ValueError):
    """The byte range starts at or beyond the end of the object (HTTP 416)."""


class DatastoreUnavailable(Exception):
    """`check_ready` failed: the datastore cannot be reached or written right now."""


async def primed(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`stream` with its first chunk already read, so that opening errors (object missing, store
    unreachable) are raised here, before a response has sent its headers, not mid-body."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = b""

    async def rest() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in stream:
                yield chunk
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    return rest()
