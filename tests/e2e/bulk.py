"""Big media through a real HTTP server, streamed both ways and compared by SHA-256.

Neither side ever holds the whole body: the upload is a generator of 1 MiB chunks hashed as they
are sent, the download is hashed chunk by chunk as it arrives.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

CHUNK_BYTES = 1024 * 1024
UPLOAD_BYTES = 50 * CHUNK_BYTES


@dataclass(frozen=True)
class Uploaded:
    mxc: str
    sha256: str
    size: int

    @property
    def server_name(self) -> str:
        return self.mxc.removeprefix("mxc://").split("/")[0]

    @property
    def media_id(self) -> str:
        return self.mxc.rsplit("/", 1)[1]


def _chunks(digest: hashlib._Hash, size: int, seed: int) -> Iterator[bytes]:
    # Seeded pseudo-random bytes: incompressible, and reproducible when a test fails.
    rng = random.Random(seed)
    remaining = size
    while remaining:
        chunk = rng.randbytes(min(CHUNK_BYTES, remaining))
        digest.update(chunk)
        remaining -= len(chunk)
        yield chunk


def upload_streamed(
    client: httpx.Client, size: int = UPLOAD_BYTES, seed: int = 0, filename: str = "big.bin"
) -> Uploaded:
    """POST /_matrix/media/v3/upload with a chunked body; what was sent and where it went."""
    digest = hashlib.sha256()
    response = client.post(
        "/_matrix/media/v3/upload", params={"filename": filename},
        headers={"Content-Type": "application/octet-stream"},
        content=_chunks(digest, size, seed),
    )
    assert response.status_code == 200, response.text
    return Uploaded(response.json()["content_uri"], digest.hexdigest(), size)


def download_digest(client: httpx.Client, media: Uploaded) -> tuple[str, int]:
    """(SHA-256, size) of the authenticated download of `media`, hashed while streaming."""
    digest, size = hashlib.sha256(), 0
    path = f"/_matrix/client/v1/media/download/{media.server_name}/{media.media_id}"
    with client.stream("GET", path) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
