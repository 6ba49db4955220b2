"""The v2 archive writer and reader against the format itself (`tests/shared/archive/mmr_format`)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.archive.format import ArchiveFormatError, parse_manifest
from shared.archive.reader import find_manifest, iter_members
from shared.archive.writer import ArchivedMedia, ArchiveSizeMismatch, ArchiveWriter, FinishedPart
from tests.shared.archive.mmr_format import MmrItem, build_mmr_archive, read_archive

CREATED = 1_700_000_000_000


async def chunks_of(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def item(n: int, size: int, content_type: str = "image/png") -> tuple[ArchivedMedia, bytes]:
    data = hashlib.sha256(str(n).encode()).digest() * (size // 32) + b"x" * (size % 32)
    media = ArchivedMedia(origin="example.org", media_id=f"media{n:03d}", upload_name=f"photo {n}.png",
                          content_type=content_type, user_id="@alice:example.org",
                          creation_ts=CREATED + n * 1000, size_bytes=len(data))
    return media, data


async def write_export(tmp_path: Path, sizes: list[int], target: int) -> dict[str, bytes]:
    parts: dict[str, bytes] = {}

    async def sink(part: FinishedPart) -> None:
        assert part.path.stat().st_size == part.size_bytes
        assert hashlib.sha256(part.path.read_bytes()).hexdigest() == part.sha256
        parts[part.file_name] = part.path.read_bytes()

    writer = ArchiveWriter(entity="@alice:example.org", created_ts=CREATED, target_bytes_per_part=target,
                           temp_dir=tmp_path, temp_tag="m0-p1-s1", sink=sink)
    records = []
    for n, size in enumerate(sizes):
        media, data = item(n, size)
        records.append(await writer.append(media, chunks_of(data)))

    async def everything() -> list:  # type: ignore[type-arg]
        return records

    await writer.finish(everything)
    return parts


async def test_parts_fill_to_the_target_and_end_with_the_manifest(tmp_path: Path) -> None:
    parts = await write_export(tmp_path, [40_000, 70_000, 10_000, 100_000, 5_000], target=100_000)
    # 40k+70k fills part 1; 10k+100k fills part 2; 5k is part 3; no empty part; manifest last.
    assert list(parts) == ["export-part-1.tgz", "export-part-2.tgz", "export-part-3.tgz",
                           "export-manifest.tgz"]
    archive = read_archive(parts)
    assert archive.gzip_names == {name: name.replace(".tgz", ".tar") for name in parts}
    assert archive.member_part["example.org__media001.png"] == "export-part-1.tgz"
    assert archive.member_part["example.org__media003.png"] == "export-part-2.tgz"
    assert not list(tmp_path.iterdir()), "temp files left behind"


async def test_members_and_manifest_describe_every_item(tmp_path: Path) -> None:
    parts = await write_export(tmp_path, [1000, 2000, 0], target=10_000)
    archive = read_archive(parts)
    manifest = archive.manifest
    assert manifest["version"] == 2
    assert manifest["entity_id"] == "@alice:example.org"
    assert manifest["created_ts"] == CREATED
    for n, size in enumerate([1000, 2000, 0]):
        media, data = item(n, size)
        entry = manifest["media"][f"mxc://example.org/media{n:03d}"]
        assert entry == {
            "name": media.upload_name, "file_name": f"example.org__media{n:03d}.png", "size_bytes": size,
            "content_type": "image/png", "s3_url": "", "sha256": hashlib.sha256(data).hexdigest(),
            "origin": "example.org", "media_id": media.media_id, "created_ts": media.creation_ts,
            "uploader": "@alice:example.org",
        }
        assert archive.members[entry["file_name"]] == data
        assert entry["file_name"] in archive.index_html


async def test_a_rebuilt_part_has_the_same_bytes(tmp_path: Path) -> None:
    first = await write_export(tmp_path, [3000, 4000], target=5000)
    again = await write_export(tmp_path, [3000, 4000], target=5000)
    assert first == again


async def test_a_stream_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    async def sink(part: FinishedPart) -> None:
        raise AssertionError("nothing should be persisted")

    writer = ArchiveWriter(entity="example.org", created_ts=CREATED, target_bytes_per_part=10,
                           temp_dir=tmp_path, temp_tag="m0-p1-s1", sink=sink)
    media, data = item(1, 100)
    with pytest.raises(ArchiveSizeMismatch):
        await writer.append(media, chunks_of(data + b"extra"))
    await writer.discard()
    assert not list(tmp_path.iterdir())


def test_the_reader_reads_an_archive_written_as_mmr_writes_it(tmp_path: Path) -> None:
    items = [MmrItem("example.org", f"m{n}", bytes([n]) * (n * 100), "text/plain", f"f{n}.txt",
                     "@bob:example.org", CREATED, ".txt") for n in range(1, 6)]
    paths = build_mmr_archive(tmp_path / "mmr", "@bob:example.org", items, part_size=500)
    assert [p.name for p in paths][-2:] == ["export-part-3.tgz", "export-manifest.tgz"]
    members = {m.name: m.file.read() for p in paths for m in iter_members(p)}
    assert members["example.org__m3.txt"] == bytes([3]) * 300
    manifests = [m for m in (find_manifest(p) for p in paths) if m is not None]
    assert len(manifests) == 1
    assert manifests[0].entity_id == "@bob:example.org"
    assert manifests[0].media["mxc://example.org/m2"].file_name == "f2.txt"


def test_v1_manifests_are_upgraded_and_others_refused() -> None:
    manifest = parse_manifest(b'{"version": 1, "user_id": "@a:b", "created_ts": 5, "media": {}}')
    assert manifest.entity_id == "@a:b"
    for bad in (b'{"version": 3, "entity_id": "x", "media": {}}', b'{"version": 2, "media": {}}',
                b'{"version": 2, "entity_id": "x"}', b"not json"):
        with pytest.raises(ArchiveFormatError):
            parse_manifest(bad)


def test_a_part_that_is_not_a_tgz_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.tgz"
    path.write_bytes(b"hello")
    with pytest.raises(ArchiveFormatError):
        list(iter_members(path))
