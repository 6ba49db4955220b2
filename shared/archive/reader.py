"""Read v2 archive parts a member at a time (never a whole part or item in memory).

Member names are only compared with the manifest's `file_name` values; nothing is ever
extracted to a path taken from the archive.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shared.archive.format import MANIFEST_MEMBER, ArchiveFormatError, Manifest, parse_manifest

MAX_MANIFEST_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Member:
    """A regular file of a part, readable only until the next member is asked for."""

    name: str
    size: int
    file: IO[bytes]


def iter_members(path: Path) -> Iterator[Member]:
    """The regular files of one `.tgz` part, in order (directories, links etc. are skipped)."""
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                handle = tar.extractfile(info)
                if handle is not None:
                    yield Member(info.name, info.size, handle)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveFormatError(f"{path.name} is not a gzip'd tar: {exc}") from exc


def find_manifest(path: Path) -> Manifest | None:
    """The manifest, if this part holds `manifest.json`."""
    for member in iter_members(path):
        if member.name == MANIFEST_MEMBER:
            if member.size > MAX_MANIFEST_BYTES:
                raise ArchiveFormatError("manifest.json is too large")
            return parse_manifest(member.file.read())
    return None
