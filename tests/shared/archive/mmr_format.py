"""matrix-media-repo's v2 archive format, written and read by the tests from the format alone.

`build_mmr_archive` writes parts the way MMR's `archival/v2archive/writer.go` does (a tar per
part inside gzip named `export-part-N.tar`, a part rotated once its members reach the target
size, so the last media part may be empty, and the manifest part last). `read_archive` is a
format-level reader of any such parts, independent of `shared.archive`.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class MmrItem:
    origin: str
    media_id: str
    data: bytes
    content_type: str
    name: str
    uploader: str
    created_ts: int
    ext: str = ".bin"

    @property
    def mxc(self) -> str:
        return f"mxc://{self.origin}/{self.media_id}"

    @property
    def archived_name(self) -> str:
        return f"{self.origin}__{self.media_id}{self.ext}"


def _tgz(members: list[tuple[str, bytes, int]], gzip_name: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mtime in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename=gzip_name, mode="wb", fileobj=out, mtime=int(time.time())) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def manifest_json(entity: str, items: list[MmrItem]) -> bytes:
    import hashlib

    media = {
        item.mxc: {
            "name": item.name, "file_name": item.archived_name, "size_bytes": len(item.data),
            "content_type": item.content_type, "s3_url": "", "sha256": hashlib.sha256(item.data).hexdigest(),
            "origin": item.origin, "media_id": item.media_id, "created_ts": item.created_ts,
            "uploader": item.uploader,
        }
        for item in items
    }
    doc = {"version": 2, "entity_id": entity, "created_ts": int(time.time() * 1000), "media": media}
    return (json.dumps(doc) + "\n").encode()


def build_mmr_archive(folder: Path, entity: str, items: list[MmrItem], part_size: int) -> list[Path]:
    """The files MMR's gdpr export would write to a folder, in the order it writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    part, members, size = 1, list[tuple[str, bytes, int]](), 0

    def write(name: str, gzip_name: str, content: list[tuple[str, bytes, int]]) -> None:
        path = folder / name
        path.write_bytes(_tgz(content, gzip_name))
        paths.append(path)

    for item in items:
        members.append((item.archived_name, item.data, item.created_ts // 1000))
        size += len(item.data)
        if size >= part_size:
            write(f"export-part-{part}.tgz", f"export-part-{part}.tar", members)
            part, members, size = part + 1, [], 0
    # MMR's Finish always rotates, so the last media part is written even when empty.
    write(f"export-part-{part}.tgz", f"export-part-{part}.tar", members)
    now = int(time.time())
    write("export-manifest.tgz", "export-manifest.tar", [
        ("manifest.json", manifest_json(entity, items), now),
        ("index.html", b"<!DOCTYPE html><html><body>index</body></html>", now),
    ])
    return paths


@dataclass
class ReadArchive:
    """What a format-level read of every part found."""

    gzip_names: dict[str, str] = field(default_factory=dict)  # file -> name in the gzip header
    members: dict[str, bytes] = field(default_factory=dict)  # tar member -> bytes
    member_part: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    index_html: str = ""


def _gzip_fname(data: bytes) -> str:
    assert data[:2] == b"\x1f\x8b", "not gzip"
    flags = data[3]
    assert flags & 0x08, "no FNAME in the gzip header"
    pos = 10
    if flags & 0x04:
        pos += 2 + int.from_bytes(data[10:12], "little")
    end = data.index(b"\0", pos)
    return data[pos:end].decode()


def read_archive(parts: dict[str, bytes]) -> ReadArchive:
    """Read parts given as {file name: bytes}."""
    result = ReadArchive()
    for file_name, data in parts.items():
        result.gzip_names[file_name] = _gzip_fname(data)
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
            for info in tar.getmembers():
                assert info.isreg(), info.name
                content = tar.extractfile(info).read()  # type: ignore[union-attr]
                assert info.name not in result.members, f"{info.name} archived twice"
                result.members[info.name] = content
                result.member_part[info.name] = file_name
    result.manifest = json.loads(result.members.pop("manifest.json"))
    result.index_html = result.members.pop("index.html").decode()
    return result
