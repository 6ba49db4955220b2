"""Single byte ranges (206/416), conditional requests (ETag, 304) and HEAD, in both modes."""

from __future__ import annotations

import pytest

from tests.conftest import RunningMmr
from tests.services.download.helpers import DOWNLOAD, unique_bytes, upload

SIZE = 200_000


@pytest.fixture(scope="module")
async def stored(mmr: RunningMmr) -> tuple[str, bytes]:
    data = unique_bytes(SIZE)
    async with mmr.client() as client:
        return await upload(client, data, "video/mp4", filename="clip.mp4"), data


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-99", 0, 99),
    ("bytes=1000-", 1000, SIZE - 1),
    ("bytes=-500", SIZE - 500, SIZE - 1),
    ("bytes=150000-999999999", 150000, SIZE - 1),
    ("bytes=-999999999", 0, SIZE - 1),
    ("bytes = 5 - 5", 5, 5),
])
async def test_a_single_range_is_206_with_exactly_those_bytes(
    mmr: RunningMmr, stored: tuple[str, bytes], header: str, start: int, end: int
) -> None:
    mxc, data = stored
    async with mmr.client() as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == data[start:end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-disposition"] == "inline; filename=clip.mp4"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
async def test_a_range_past_the_end_is_416(
    mmr: RunningMmr, stored: tuple[str, bytes], header: str
) -> None:
    mxc, _ = stored
    async with mmr.client() as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.json()["errcode"] == "M_UNKNOWN"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-3", "items=0-5", "bytes=abc", "bytes=-"])
async def test_multi_reversed_or_malformed_ranges_get_the_whole_body(
    mmr: RunningMmr, stored: tuple[str, bytes], header: str
) -> None:
    mxc, data = stored
    async with mmr.client() as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": header})
    assert response.status_code == 200
    assert response.content == data


async def test_if_range_with_another_etag_gets_the_whole_body(
    mmr: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, data = stored
    async with mmr.client() as client:
        etag = (await client.head(f"{DOWNLOAD}/{mxc}")).headers["etag"]
        fresh = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": "bytes=0-9", "If-Range": etag})
        stale = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": "bytes=0-9", "If-Range": '"x"'})
    assert (fresh.status_code, fresh.content) == (206, data[:10])
    assert (stale.status_code, stale.content) == (200, data)


async def test_if_none_match_with_the_etag_is_304_without_a_body(
    mmr: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, _ = stored
    async with mmr.client() as client:
        first = await client.get(f"{DOWNLOAD}/{mxc}")
        etag = first.headers["etag"]
        for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
            again = await client.get(f"{DOWNLOAD}/{mxc}", headers={"If-None-Match": header})
            assert again.status_code == 304, header
            assert again.content == b""
            assert again.headers["etag"] == etag
        changed = await client.get(f"{DOWNLOAD}/{mxc}", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


async def test_the_etag_is_the_same_for_every_request_of_the_media(
    mmr: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, _ = stored
    async with mmr.client() as client:
        tags = {(await client.get(f"{DOWNLOAD}/{mxc}")).headers["etag"] for _ in range(3)}
    assert len(tags) == 1


async def test_head_gives_the_headers_of_get_and_no_body(
    mmr: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, _ = stored
    async with mmr.client() as client:
        head = await client.head(f"{DOWNLOAD}/{mxc}")
        get = await client.get(f"{DOWNLOAD}/{mxc}")
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-disposition", "content-length", "etag", "accept-ranges",
                 "cache-control", "content-security-policy"):
        assert head.headers[name] == get.headers[name], name
    assert head.headers["content-length"] == str(SIZE)


async def test_unknown_media_is_404(mmr: RunningMmr) -> None:
    async with mmr.client() as client:
        response = await client.get(f"{DOWNLOAD}/localhost/doesnotexist", params={"timeout_ms": 0})
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"
