"""Key layout and the key safety check."""

from __future__ import annotations

import hashlib

import pytest

from shared.storage.base import InvalidKey
from shared.storage.keys import content_key, validate_key


def test_content_key_layout() -> None:
    digest = hashlib.sha256(b"hello").hexdigest()
    assert content_key(digest) == f"{digest[:2]}/{digest[2:4]}/{digest}"
    assert validate_key(content_key(digest)) == content_key(digest)


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "A" * 64, "g" * 64, "a" * 63, "a" * 65, "../" + "a" * 61, " " + "a" * 63],
)
def test_content_key_rejects_non_hashes(bad: str) -> None:
    with pytest.raises(ValueError):
        content_key(bad)


@pytest.mark.parametrize("key", ["a", "ab/cd/ef", "exports/abc-1/part_0.tgz", "A-b_c.d"])
def test_validate_key_accepts_safe_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        ".",
        "..",
        "../x",
        "a/../b",
        "a/./b",
        "/a",
        "a/",
        "a//b",
        ".a",
        "a/.b",
        "a\\b",
        "a b",
        "a\x00",
        "é",
        "x" * 513,
    ],
)
def test_validate_key_rejects_unsafe_keys(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)
