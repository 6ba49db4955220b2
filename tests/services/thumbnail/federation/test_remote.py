"""Thumbnails of remote media: the original comes through the shared remote-media code (fetched
once over real federation, cached like a download), and the thumbnail is made here."""

from __future__ import annotations

import pytest

from tests.infra.synapse import SynapseServer
from tests.services.download.federation.conftest import ServeMmr
from tests.services.download.federation.helpers import federation_requests, media_id_of
from tests.services.thumbnail import media
from tests.services.thumbnail.helpers import CLIENT, unique_jpeg

pytestmark = pytest.mark.timeout(180)


async def test_a_remote_original_is_fetched_once_and_thumbnailed_here(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str
) -> None:
    mxc = synapse_b.upload(b_uploader_token, unique_jpeg(1200, 900), "image/jpeg")
    media_id = media_id_of(mxc)
    mmr = serve_mmr("embedded")
    path = f"{CLIENT}/{synapse_b.server_name}/{media_id}"
    async with mmr.as_client() as client:
        crop = await client.get(path, params={"width": 96, "height": 96, "method": "crop"})
        scale = await client.get(path, params={"width": 320, "height": 240})
    assert crop.status_code == 200, crop.text
    assert crop.headers["content-type"] == "image/jpeg"
    assert media.decode(crop.content).size == (96, 96)
    assert media.decode(scale.content).size == (320, 240)
    assert federation_requests(synapse_b, media_id) == 1  # the original, once, for both sizes


async def test_a_remote_source_too_large_to_thumbnail_is_502(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str
) -> None:
    mxc = synapse_b.upload(b_uploader_token, media.declared_huge_png(), "image/png")
    mmr = serve_mmr("embedded")
    async with mmr.as_client() as client:
        response = await client.get(f"{CLIENT}/{synapse_b.server_name}/{media_id_of(mxc)}",
                                    params={"width": 96, "height": 96})
    assert (response.status_code, response.json()["errcode"]) == (502, "M_TOO_LARGE")


async def test_remote_media_the_legacy_route_may_not_fetch_is_404(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str
) -> None:
    mxc = synapse_b.upload(b_uploader_token, unique_jpeg(), "image/jpeg")
    media_id = media_id_of(mxc)
    mmr = serve_mmr("embedded")
    async with mmr.as_client() as client:
        response = await client.get(
            f"/_matrix/media/v3/thumbnail/{synapse_b.server_name}/{media_id}",
            params={"width": 96, "height": 96, "allow_remote": "false"},
        )
    assert (response.status_code, response.json()["errcode"]) == (404, "M_NOT_FOUND")
    assert federation_requests(synapse_b, media_id) == 0
