"""Choosing a datastore by kind and finding one by id."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.storage.file import FileDatastore
from shared.storage.registry import DATASTORE_KINDS, DatastoreRegistry


def store(tmp_path: Path, id: str, *kinds: str) -> FileDatastore:
    return FileDatastore(id=id, kinds=frozenset(kinds), path=tmp_path / id)


def test_kinds() -> None:
    assert frozenset({"local_media", "remote_media", "thumbnails", "archives", "all"}) == DATASTORE_KINDS


def test_first_matching_store_wins(tmp_path: Path) -> None:
    thumbs = store(tmp_path, "thumbs", "thumbnails")
    media = store(tmp_path, "media", "local_media", "remote_media")
    catch_all = store(tmp_path, "rest", "all")
    registry = DatastoreRegistry([thumbs, media, catch_all])
    assert registry.for_kind("thumbnails") is thumbs
    assert registry.for_kind("local_media") is media
    assert registry.for_kind("remote_media") is media
    assert registry.for_kind("archives") is catch_all


def test_no_store_for_kind_names_the_kind(tmp_path: Path) -> None:
    registry = DatastoreRegistry([store(tmp_path, "thumbs", "thumbnails")])
    with pytest.raises(LookupError, match="archives"):
        registry.for_kind("archives")


def test_read_only_store_is_reachable_by_id_only(tmp_path: Path) -> None:
    old = store(tmp_path, "old")
    registry = DatastoreRegistry([old])
    assert registry.get("old") is old
    with pytest.raises(LookupError):
        registry.for_kind("local_media")


def test_unknown_kind_is_rejected(tmp_path: Path) -> None:
    registry = DatastoreRegistry([store(tmp_path, "a", "all")])
    with pytest.raises(ValueError, match="thumbnail"):
        registry.for_kind("thumbnail")


def test_get_unknown_id(tmp_path: Path) -> None:
    registry = DatastoreRegistry([store(tmp_path, "a", "all")])
    with pytest.raises(KeyError, match="nope"):
        registry.get("nope")


def test_duplicate_ids_and_bad_kinds_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        DatastoreRegistry([store(tmp_path, "a", "all"), store(tmp_path, "a", "thumbnails")])
    with pytest.raises(ValueError, match="media"):
        DatastoreRegistry([store(tmp_path, "a", "media")])


async def test_all_and_close(tmp_path: Path) -> None:
    stores = [store(tmp_path, "a", "all"), store(tmp_path, "b", "thumbnails")]
    registry = DatastoreRegistry(stores)
    assert registry.all() == stores
    await registry.close()
