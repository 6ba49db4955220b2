"""S3 datastores with a `publicBaseUrl`: 307 to the object where redirects are allowed."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningMmr
from tests.services.download.conftest import ServeFactory
from tests.services.download.helpers import DOWNLOAD, LEGACY_DOWNLOAD, unique_bytes, upload


@pytest.fixture(scope="module")
def public_node(serve_cluster: ServeFactory) -> RunningMmr:
    return serve_cluster(public=True, repo={"freezeUnauthenticatedMedia": False})


@pytest.fixture(scope="module")
async def stored(public_node: RunningMmr) -> tuple[str, bytes]:
    data = unique_bytes(5000)
    async with public_node.client() as client:
        return await upload(client, data, "image/png", filename="a.png"), data


async def test_v1_redirects_to_the_public_object(
    public_node: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, data = stored
    async with public_node.client() as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert response.status_code == 307
    location = response.headers["location"]
    assert location.startswith(public_node.config.datastores[0].opts["publicBaseUrl"])
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(location)).content == data


async def test_legacy_streams_unless_the_client_allows_redirects(
    public_node: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, data = stored
    async with public_node.client() as client:
        streamed = await client.get(f"{LEGACY_DOWNLOAD}/{mxc}")
        explicit_false = await client.get(f"{LEGACY_DOWNLOAD}/{mxc}", params={"allow_redirect": "false"})
        redirected = await client.get(f"{LEGACY_DOWNLOAD}/{mxc}", params={"allow_redirect": "true"})
    assert (streamed.status_code, streamed.content) == (200, data)
    assert (explicit_false.status_code, explicit_false.content) == (200, data)
    assert redirected.status_code == 307
    assert redirected.headers["location"].startswith("http")


async def test_a_client_following_the_redirect_gets_the_bytes(
    public_node: RunningMmr, stored: tuple[str, bytes]
) -> None:
    mxc, data = stored
    async with public_node.client(follow_redirects=True) as client:
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert (response.status_code, response.content) == (200, data)


async def test_a_private_datastore_never_redirects(serve_cluster: ServeFactory) -> None:
    node = serve_cluster()
    data = unique_bytes()
    async with node.client() as client:
        mxc = await upload(client, data, "image/png")
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert (response.status_code, response.content) == (200, data)
