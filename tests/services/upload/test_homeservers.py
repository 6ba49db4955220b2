"""Many homeservers in one deployment: the Host picks the homeserver entry, its name is the MXC
origin and its `uploads` overrides apply. (Token checks against each one's csApi: tests/e2e.)
"""

from __future__ import annotations

import httpx

from tests.conftest import TEST_SECRET
from tests.services.upload.conftest import ConfigFactory, Serve
from tests.services.upload.helpers import (
    CREATE,
    UPLOAD,
    assert_error,
    media_path,
    unique_bytes,
)

HOMESERVERS = [
    {"name": "one.example", "csApi": "", "uploads": {"maxBytes": 1000, "reportedMaxBytes": 900}},
    {"name": "two.example", "csApi": ""},
]


def as_host(url: str, host: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, headers={"Host": host, "Authorization": f"Bearer {TEST_SECRET}"}, timeout=30
    )


async def test_host_selects_origin_and_limits(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config(homeservers=HOMESERVERS, uploads={"maxBytes": 5000}))
    async with as_host(node.url, "one.example") as one, as_host(node.url, "two.example:8448") as two:
        small = await one.post(UPLOAD, content=unique_bytes(1000))
        assert small.json()["content_uri"].startswith("mxc://one.example/")
        assert_error(await one.post(UPLOAD, content=unique_bytes(1001)), 413, "M_TOO_LARGE")
        big = await two.post(UPLOAD, content=unique_bytes(3000))
        assert big.json()["content_uri"].startswith("mxc://two.example/")
        created = (await two.post(CREATE)).json()["content_uri"]
        assert created.startswith("mxc://two.example/")
        assert (await one.get("/_matrix/client/v1/media/config")).json() == {"m.upload.size": 900}
        assert (await two.get("/_matrix/client/v1/media/config")).json() == {"m.upload.size": 5000}
        # Downloads name the origin in the path, whichever Host they come through.
        got = await one.get(f"/_matrix/client/v1/media/download/{media_path(big.json()['content_uri'])}")
        assert got.status_code == 200


async def test_forwarded_host_is_used_behind_a_proxy(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config(homeservers=HOMESERVERS))
    async with as_host(node.url, "mmr.internal") as client:
        response = await client.post(
            UPLOAD, content=unique_bytes(), headers={"X-Forwarded-Host": "two.example"}
        )
    assert response.json()["content_uri"].startswith("mxc://two.example/")


async def test_put_through_another_homeservers_host_is_404(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config(homeservers=HOMESERVERS))
    async with as_host(node.url, "one.example") as one, as_host(node.url, "two.example") as two:
        mxc = (await one.post(CREATE)).json()["content_uri"]
        wrong_host = await two.put(f"{UPLOAD}/{media_path(mxc)}", content=b"data")
        assert_error(wrong_host, 404, "M_NOT_FOUND")
        assert (await one.put(f"{UPLOAD}/{media_path(mxc)}", content=b"data")).status_code == 200


async def test_unknown_host_is_a_clear_error(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config(homeservers=HOMESERVERS))
    async with as_host(node.url, "stranger.example") as client:
        for response in (
            await client.post(UPLOAD, content=b"data"),
            await client.post(CREATE),
            await client.get("/_matrix/media/v3/config"),
        ):
            body = assert_error(response, 404, "M_NOT_FOUND")
            assert "stranger.example" in body["error"]
        # The process is fine afterwards.
        assert (await client.get("/healthz")).status_code == 200
