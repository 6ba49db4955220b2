"""Open-ended ranges (`Range: bytes=N-`) answer at most `downloads.defaultRangeChunkSizeBytes`,
so a player seeking in a long video does not make the server stream the rest of the file; closed
ranges, suffix ranges and whole downloads are unaffected. Both modes, over real HTTP."""

from __future__ import annotations

import pytest

from services.download.serving import requested_range
from shared.config import DownloadsConfig
from shared.storage.base import ByteRange
from tests.conftest import RunningMmr
from tests.services.download.conftest import ServeFactory
from tests.services.download.helpers import DOWNLOAD, LEGACY_DOWNLOAD, unique_bytes, upload

SIZE = 200_000
CHUNK = 1000


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def chunked(request: pytest.FixtureRequest) -> RunningMmr:
    factory: ServeFactory = request.getfixturevalue(f"serve_{request.param}")
    return factory(downloads={"defaultRangeChunkSizeBytes": CHUNK}, repo={
        "freezeUnauthenticatedMedia": False})


@pytest.fixture(scope="module")
async def stored(chunked: RunningMmr) -> tuple[str, bytes]:
    data = unique_bytes(SIZE)
    async with chunked.client() as client:
        return await upload(client, data, "video/mp4", filename="film.mp4"), data


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-", 0, CHUNK - 1),
    ("bytes=5000-", 5000, 5000 + CHUNK - 1),
    ("bytes=199500-", 199_500, SIZE - 1),  # near the end: what is left, not padded
    ("bytes=199999-", SIZE - 1, SIZE - 1),
])
@pytest.mark.parametrize("route", [DOWNLOAD, LEGACY_DOWNLOAD])
async def test_an_open_ended_range_gets_at_most_one_chunk(
    chunked: RunningMmr, stored: tuple[str, bytes], route: str, header: str, start: int, end: int
) -> None:
    mxc, data = stored
    async with chunked.client() as client:
        response = await client.get(f"{route}/{mxc}", headers={"Range": header})
        head = await client.head(f"{route}/{mxc}", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.content == data[start:end + 1]
    assert (head.status_code, head.headers["content-range"]) == (206, f"bytes {start}-{end}/{SIZE}")


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-4999", 0, 4999),  # a closed range larger than a chunk is served whole
    ("bytes=100000-199999", 100_000, SIZE - 1),
    ("bytes=-3000", SIZE - 3000, SIZE - 1),  # the last N bytes: a length the client chose
])
async def test_closed_and_suffix_ranges_are_not_capped(
    chunked: RunningMmr, stored: tuple[str, bytes], header: str, start: int, end: int
) -> None:
    mxc, data = stored
    async with chunked.client() as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.content == data[start:end + 1]


async def test_a_whole_download_is_not_capped(
    chunked: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, data = stored
    async with chunked.client() as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert (response.status_code, response.content) == (200, data)


async def test_past_the_end_is_still_416(chunked: RunningMmr, stored: tuple[str, bytes]) -> None:
    mxc, _ = stored
    async with chunked.client() as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": f"bytes={SIZE}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"


def test_the_default_chunk_is_ten_mebibytes() -> None:
    chunk = DownloadsConfig().default_range_chunk_size_bytes
    assert chunk == 10 * 1024 * 1024
    two_gib = 2 * 1024**3
    assert requested_range("bytes=1000-", None, '"e"', two_gib, open_ended_max=chunk) == ByteRange(
        1000, 1000 + chunk - 1)
