"""Servers fetching our media over federation (downloads and thumbnails) are never charged to a
download byte budget: only clients are."""

from __future__ import annotations

import httpx
import pytest
from signedjson.key import SigningKey

from shared.federation.xmatrix import load_signing_key, sign_request
from tests.infra.synapse import SynapseServer
from tests.services.download.budget import BUDGET, FILE, LIMIT, random_ip
from tests.services.download.federation.conftest import Mmr, ServeMmr
from tests.services.download.helpers import DOWNLOAD, FEDERATION_DOWNLOAD, unique_bytes, upload
from tests.services.thumbnail.helpers import FEDERATION as FEDERATION_THUMBNAIL
from tests.services.thumbnail.helpers import unique_jpeg


async def _signed_get(mmr: Mmr, key: SigningKey, origin: str, uri: str, ip: str) -> httpx.Response:
    assert mmr.own_name is not None
    auth = sign_request(key, origin, mmr.own_name, "GET", uri)
    # From the client IP a charged request would fill (through the trusted loopback proxy).
    headers = {"Host": mmr.own_name, "Authorization": auth, "X-Forwarded-For": ip}
    async with httpx.AsyncClient(base_url=mmr.url, verify=False, timeout=60) as client:
        return await client.get(uri, headers=headers)


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
async def test_federation_routes_are_not_charged(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, mode: str,
) -> None:
    mmr = serve_mmr(mode, tls=True, **BUDGET)
    async with mmr.as_owner() as owner:
        file_id = (await upload(owner, unique_bytes(FILE))).rsplit("/", 1)[1]
        image_id = (await upload(owner, unique_jpeg(), "image/jpeg")).rsplit("/", 1)[1]
    key = load_signing_key(str(synapse_b.signing_key_path))
    ip = random_ip()
    for _ in range(4):  # far more than the budget
        got = await _signed_get(mmr, key, synapse_b.server_name,
                                f"{FEDERATION_DOWNLOAD}/{file_id}", ip)
        assert got.status_code == 200, got.text
    for _ in range(3):
        thumb = await _signed_get(mmr, key, synapse_b.server_name,
                                  f"{FEDERATION_THUMBNAIL}/{image_id}?width=96&height=96", ip)
        assert thumb.status_code == 200, thumb.text
    # A client from that IP still has the whole budget, to within a kilobyte.
    mxc = f"{mmr.own_name}/{file_id}"
    async with mmr.as_owner(headers={"X-Forwarded-For": ip}) as client:
        whole = [(await client.get(f"{DOWNLOAD}/{mxc}")).status_code for _ in range(2)]
        rest = await client.get(f"{DOWNLOAD}/{mxc}",
                                headers={"Range": f"bytes=0-{LIMIT - 2 * FILE - 1000}"})
    assert whole == [200, 200]
    assert rest.status_code == 206
