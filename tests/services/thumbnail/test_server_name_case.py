"""Thumbnails of our own media under our server name in another case: served, never fetched
over federation (an unknown ID is 404, not the 502 of an unreachable remote)."""

from __future__ import annotations

import pytest

from tests.services.thumbnail.conftest import Node
from tests.services.thumbnail.helpers import CLIENT, unique_jpeg, upload

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("spelling", ["LOCALHOST", "Localhost"])
async def test_own_media_thumbnail_under_another_case(embedded: Node, spelling: str) -> None:
    async with embedded.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
        params = {"width": 64, "height": 64, "method": "scale"}
        response = await client.get(f"{CLIENT}/{spelling}/{media_id}", params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/")
        missing = await client.get(f"{CLIENT}/{spelling}/AAAAAAAAAAAAAAAAAAAAAAAAAAA", params=params)
        assert missing.status_code == 404, missing.text
