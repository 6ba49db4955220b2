"""Object key layout: the only place that decides what a key in a datastore looks like.

Keys are derived from content hashes, never from user input, so a key can be joined onto a
filesystem root or an S3 prefix without escaping it. `validate_key` is the guard every datastore
runs before it touches storage, in case a bad key arrives from the database or a bug.
"""

from __future__ import annotations

import re

from shared.storage.base import InvalidKey

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# One path segment: starts with an alphanumeric, `_` or `-` (so never `.`/`..` or a hidden file,
# which is where datastores put their temp files), then the same plus dots.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9._-]*"
_KEY = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")

MAX_KEY_LENGTH = 512
"""Well under S3's 1024-byte limit, leaving room for a datastore prefix."""


def content_key(sha256_hex: str) -> str:
    """The key for content with this SHA-256: `ab/cd/abcd…` (two levels of 256-way fan-out).

    The fan-out keeps directories small on file datastores, matching MMR's `path/aa/bb/rest`.
    """
    if not isinstance(sha256_hex, str) or _SHA256_HEX.fullmatch(sha256_hex) is None:
        raise ValueError(f"not a lowercase hex SHA-256: {sha256_hex!r}")
    return f"{sha256_hex[0:2]}/{sha256_hex[2:4]}/{sha256_hex}"


_CONTENT_KEY = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")


def is_content_key(key: str) -> bool:
    """Whether `key` is what `content_key` makes (the fan-out matching the hash)."""
    found = _CONTENT_KEY.fullmatch(key)
    return found is not None and found[3].startswith(found[1] + found[2])


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative key, else raise `InvalidKey`.

    Safe means: `/`-separated segments of `[A-Za-z0-9._-]`, no empty segment, no segment starting
    with `.` (rules out `..`), no leading `/`, no backslash or control character.
    """
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or _KEY.fullmatch(key) is None:
        raise InvalidKey(f"unsafe datastore key: {key!r}")
    return key
