"""Thumbnails never change once made, so their hash is an ETag and a revalidation costs nothing."""

from __future__ import annotations

from tests.conftest import SERVER_NAME
from tests.services.thumbnail.conftest import Node
from tests.services.thumbnail.helpers import CLIENT, unique_jpeg, upload


async def test_a_thumbnail_carries_an_etag_and_if_none_match_gets_304(embedded: Node) -> None:
    async with embedded.client() as client:
        media_id = await upload(client, unique_jpeg(1200, 900), "image/jpeg")
        url = f"{CLIENT}/{SERVER_NAME}/{media_id}"
        params = {"width": 96, "height": 96, "method": "crop"}
        first = await client.get(url, params=params)
        assert first.status_code == 200, first.text
        etag = first.headers["etag"]
        assert etag.startswith('"')
        again = await client.get(url, params=params, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        stale = await client.get(url, params=params, headers={"If-None-Match": '"other"'})
        assert stale.status_code == 200
        assert stale.content == first.content
