"""Thumbnails never change once made, so their hash is an ETag and a revalidation costs nothing."""

from __future__ import annotations

import httpx

from tests.conftest import SERVER_NAME
from tests.services.thumbnail.conftest import Node
from tests.services.thumbnail.helpers import CLIENT, unique_jpeg, upload

PARAMS = {"width": 96, "height": 96, "method": "crop"}


async def _first_thumbnail(client: httpx.AsyncClient) -> tuple[str, dict[str, object], httpx.Response]:
    """A fresh upload's URL, the query, and its first (cold) thumbnail answer."""
    media_id = await upload(client, unique_jpeg(1200, 900), "image/jpeg")
    url = f"{CLIENT}/{SERVER_NAME}/{media_id}"
    first = await client.get(url, params=PARAMS)
    assert first.status_code == 200, first.text
    return url, dict(PARAMS), first


async def test_a_thumbnail_carries_an_etag_and_if_none_match_gets_304(embedded: Node) -> None:
    async with embedded.client() as client:
        url, params, first = await _first_thumbnail(client)
        etag = first.headers["etag"]
        assert etag.startswith('"')
        again = await client.get(url, params=params, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        stale = await client.get(url, params=params, headers={"If-None-Match": '"other"'})
        assert stale.status_code == 200
        assert stale.content == first.content


async def test_a_warm_answer_carries_the_same_headers_and_bytes_as_the_first(
    embedded: Node,
) -> None:
    """The second answer comes from the process's caches with headers built once
    (`PrebuiltResponse`): nothing may differ from the first but the request ID."""
    async with embedded.client() as client:
        url, params, first = await _first_thumbnail(client)
        for _ in range(2):
            again = await client.get(url, params=params)
            assert again.status_code == 200
            assert again.content == first.content
            assert int(again.headers["content-length"]) == len(first.content)
            differing = {name for name in {*first.headers, *again.headers}
                         if first.headers.get(name) != again.headers.get(name)}
            assert differing <= {"x-request-id", "date"}
            assert again.headers.get_list("content-length") == [str(len(first.content))]
