"""What the download service holds for its lifetime (`rt.part(DownloadContext)`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from shared.runtime import Runtime
from shared.storage.bytes_cache import ObjectBytesCache
from shared.storage.s3 import PresignedUrls

SMALL_OBJECTS_MAX_BYTES = 32 * 1024 * 1024
SMALL_OBJECT_MAX_BYTES = 256 * 1024
"""Hot small media (avatars, stickers, emoji) are most downloads, and reading one costs more
than the rest of serving it: an object store GET, or for a file datastore the worker-thread hop
around open and read (measured: 0.16 ms of CPU of a 0.28 ms 10 KiB download, against the page
cache). So the bytes of small ones stay in memory, 32 MiB per process at most."""


def _small_objects() -> ObjectBytesCache:
    return ObjectBytesCache(SMALL_OBJECTS_MAX_BYTES, SMALL_OBJECT_MAX_BYTES)


@dataclass
class DownloadContext:
    small_objects: ObjectBytesCache = field(default_factory=_small_objects)
    presigned: PresignedUrls = field(default_factory=PresignedUrls)

    @classmethod
    def build(cls, rt: Runtime) -> Self:
        return cls()

    async def close(self) -> None:
        return None
