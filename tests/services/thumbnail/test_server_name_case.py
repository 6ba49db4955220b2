"""Thumbnails of our own media under our server name in another case: served, never fetched
over federation (an unknown ID is 404, not the 502 of an unreachable remote), on the
authenticated route and the deprecated legacy one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.config import MmrConfig
from tests.services.thumbnail.conftest import Node, Serve, embedded_app
from tests.services.thumbnail.helpers import CLIENT, LEGACY, unique_jpeg, upload

pytestmark = pytest.mark.asyncio
ROUTES = [CLIENT, LEGACY.format(version="v3")]


@pytest.fixture
def node(serve: Serve, embedded_config: Callable[..., MmrConfig]) -> Node:
    # Unfrozen, so the legacy route serves new media too.
    config = embedded_config(repo={"freezeUnauthenticatedMedia": False})
    return serve(embedded_app(config), config)


@pytest.mark.parametrize("spelling", ["LOCALHOST", "Localhost"])
async def test_own_media_thumbnail_under_another_case(node: Node, spelling: str) -> None:
    async with node.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
        params = {"width": 64, "height": 64, "method": "scale"}
        for route in ROUTES:
            response = await client.get(f"{route}/{spelling}/{media_id}", params=params)
            assert response.status_code == 200, (route, response.text)
            assert response.headers["content-type"].startswith("image/")
            missing = await client.get(f"{route}/{spelling}/AAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                       params=params)
            assert missing.status_code == 404, (route, missing.text)
