"""What a v2 archive looks like, as matrix-media-repo writes it (`archival/v2archive/`).

An export is a series of gzip'd tars: `export-part-1.tgz` ... `export-part-N.tgz` hold the media,
one tar member per item named `{origin}__{mediaId}{ext}`; the last part, `export-manifest.tgz`,
holds `manifest.json` (version 2) and `index.html`. Readers find media through the manifest's
`file_name`, never by parsing member names, so the extension is only a hint for people.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.matrix.disposition import media_type

MANIFEST_VERSION = 2
MANIFEST_MEMBER = "manifest.json"
INDEX_MEMBER = "index.html"
MANIFEST_PART_NAME = "export-manifest"
PART_SUFFIX = ".tgz"

# Extensions as MMR's type detection (gabriel-vasile/mimetype) names them where Python's table
# disagrees or has none; unknown binary gets no extension, as there.
_EXTENSIONS: Mapping[str, str] = {
    "application/octet-stream": "",
    "image/jpeg": ".jpg",
    "image/apng": ".png",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/avif": ".avif",
    "image/webp": ".webp",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "text/plain": ".txt",
}


class ArchiveFormatError(ValueError):
    """The archive is not a v2 (or v1) archive this reader understands."""


def part_stem(index: int) -> str:
    """`export-part-N`: the tar's name inside the gzip header; `.tgz` is the file name."""
    return f"export-part-{index}"


def part_key(collection: str, owner_id: str, sha256: str) -> str:
    """Where a stored part lives in the `archives` datastore: `exports/{id}/{sha256}.tgz`.

    Not a bare content key (`ab/cd/<sha256>`) on purpose: those are media objects, which
    machine 0's orphan sweep removes when no media or thumbnail row points at them.
    """
    return f"{collection}/{owner_id}/{sha256}{PART_SUFFIX}"


def extension_for(content_type: str | None) -> str:
    essence = media_type(content_type)
    if essence in _EXTENSIONS:
        return _EXTENSIONS[essence]
    if not essence:
        return ""
    return mimetypes.guess_extension(essence, strict=False) or ""


def member_name(origin: str, media_id: str, content_type: str | None) -> str:
    """`{origin}__{mediaId}{ext}`, the archived name of one media item."""
    return f"{origin}__{media_id}{extension_for(content_type)}"


def mxc_uri(origin: str, media_id: str) -> str:
    return f"mxc://{origin}/{media_id}"


@dataclass(frozen=True)
class ManifestRecord:
    """One media item of the manifest; the JSON keys are MMR's (`name` is the upload name)."""

    file_name: str  # the upload name ("name")
    archived_name: str  # the tar member ("file_name")
    size_bytes: int
    content_type: str
    s3_url: str
    sha256: str
    origin: str
    media_id: str
    created_ts: int
    uploader: str

    @property
    def mxc(self) -> str:
        return mxc_uri(self.origin, self.media_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.file_name, "file_name": self.archived_name, "size_bytes": self.size_bytes,
            "content_type": self.content_type, "s3_url": self.s3_url, "sha256": self.sha256,
            "origin": self.origin, "media_id": self.media_id, "created_ts": self.created_ts,
            "uploader": self.uploader,
        }

    @classmethod
    def from_json(cls, value: Any) -> ManifestRecord:
        if not isinstance(value, dict):
            raise ArchiveFormatError("invalid manifest: a media entry is not an object")

        def text(key: str) -> str:
            item = value.get(key) or ""
            if not isinstance(item, str):
                raise ArchiveFormatError(f"invalid manifest: {key!r} is not a string")
            return item

        def number(key: str) -> int:
            item = value.get(key) or 0
            if not isinstance(item, int) or isinstance(item, bool):
                raise ArchiveFormatError(f"invalid manifest: {key!r} is not an integer")
            return item

        return cls(
            file_name=text("name"), archived_name=text("file_name"), size_bytes=number("size_bytes"),
            content_type=text("content_type"), s3_url=text("s3_url"), sha256=text("sha256"),
            origin=text("origin"), media_id=text("media_id"), created_ts=number("created_ts"),
            uploader=text("uploader"),
        )


@dataclass(frozen=True)
class Manifest:
    entity_id: str
    created_ts: int
    media: dict[str, ManifestRecord]

    def mxcs_by_member(self) -> dict[str, list[str]]:
        """Archived name -> the mxc URIs stored under it (MMR allows several per member)."""
        mapping: dict[str, list[str]] = {}
        for mxc, record in self.media.items():
            mapping.setdefault(record.archived_name, []).append(mxc)
        return mapping


def parse_manifest(data: bytes) -> Manifest:
    """A manifest from `manifest.json`; v1 (`user_id`) is upgraded as MMR does."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ArchiveFormatError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ArchiveFormatError("manifest.json is not an object")
    version = raw.get("version")
    entity = raw.get("entity_id") or ""
    if version == 1:
        entity, version = raw.get("user_id") or "", MANIFEST_VERSION
    if version != MANIFEST_VERSION:
        raise ArchiveFormatError(f"unsupported manifest version {version!r}")
    if not isinstance(entity, str) or not entity:
        raise ArchiveFormatError("invalid manifest: no entity")
    media = raw.get("media")
    if not isinstance(media, dict):
        raise ArchiveFormatError("invalid manifest: no media")
    created = raw.get("created_ts") or 0
    return Manifest(
        entity_id=entity,
        created_ts=created if isinstance(created, int) else 0,
        media={str(mxc): ManifestRecord.from_json(item) for mxc, item in media.items()},
    )


def manifest_json_chunks(entity: str, created_ts: int, records: Iterator[ManifestRecord]) -> Iterator[bytes]:
    """`manifest.json` written a record at a time (the media map can be large)."""
    head = {"version": MANIFEST_VERSION, "entity_id": entity, "created_ts": created_ts}
    yield json.dumps(head)[:-1].encode() + b', "media": {'
    first = True
    for record in records:
        prefix = b"" if first else b", "
        first = False
        yield prefix + json.dumps(record.mxc).encode() + b": " + json.dumps(record.to_json()).encode()
    yield b"}}\n"
