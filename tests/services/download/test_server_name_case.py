"""Our own server name in another case is ours: DNS names are case-insensitive.

`LOCALHOST/<id>` is the media uploaded as `localhost/<id>`, served without any federation lookup
(an unknown ID is a plain 404, never the 502 of a remote server that could not be reached).
"""

from __future__ import annotations

import pytest

from tests.conftest import RunningMmr
from tests.services.download.conftest import ServeFactory
from tests.services.download.helpers import DOWNLOAD, LEGACY_DOWNLOAD, unique_bytes, upload

pytestmark = pytest.mark.asyncio

SPELLINGS = ["LOCALHOST", "Localhost", "localHost"]


@pytest.fixture(scope="module")
def mmr(serve_embedded: ServeFactory) -> RunningMmr:
    # Unfrozen, so the legacy route serves new media too.
    return serve_embedded(repo={"freezeUnauthenticatedMedia": False})


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_own_media_under_another_case_is_served(mmr: RunningMmr, spelling: str) -> None:
    data = unique_bytes(2048)
    async with mmr.client() as client:
        media_id = (await upload(client, data)).split("/", 1)[1]
        for route in (DOWNLOAD, LEGACY_DOWNLOAD):
            for tail in ("", "/named.bin"):
                response = await client.get(f"{route}/{spelling}/{media_id}{tail}")
                assert response.status_code == 200, (route, tail, response.text)
                assert response.content == data
            head = await client.head(f"{route}/{spelling}/{media_id}")
            assert head.status_code == 200, (route, head.headers)


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_unknown_media_under_another_case_is_404_without_federation(
    mmr: RunningMmr, spelling: str
) -> None:
    async with mmr.client() as client:
        for route in (DOWNLOAD, LEGACY_DOWNLOAD):
            response = await client.get(f"{route}/{spelling}/AAAAAAAAAAAAAAAAAAAAAAAAAAA")
            assert response.status_code == 404, (route, response.text)
            assert response.json()["errcode"] == "M_NOT_FOUND"
