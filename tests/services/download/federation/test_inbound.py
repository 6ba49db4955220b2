"""Our media to other servers: a real Synapse fetches it through our federation endpoint, and
requests that are unsigned, forged or addressed elsewhere are refused with 401."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from signedjson.key import SigningKey, generate_signing_key

from shared.coordination.inprocess import InProcessCoordinator
from shared.federation.client import FederationClient
from shared.federation.keys import KeyStore
from shared.federation.multipart import boundary_of, read_media_multipart
from shared.federation.xmatrix import key_id_of, load_signing_key, sign_request
from tests.infra.synapse import SynapseServer
from tests.services.download.federation.conftest import Mmr, ServeMmr
from tests.services.download.helpers import (
    DOWNLOAD,
    FEDERATION_DOWNLOAD,
    disposition_filename,
    unique_bytes,
    upload,
)


async def _owned_media(mmr: Mmr, data: bytes, content_type: str, filename: str | None) -> str:
    async with mmr.as_owner() as client:
        return (await upload(client, data, content_type, filename)).rsplit("/", 1)[1]


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
async def test_a_real_homeserver_fetches_our_media_over_federation(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_user_token: str, mode: str,
) -> None:
    mmr = serve_mmr(mode, tls=True)
    data = unique_bytes(200_000)
    media_id = await _owned_media(mmr, data, "image/png", "ours ☕.png")
    keys_before = synapse_b.count_requests("/_matrix/key/v2/server")
    async with httpx.AsyncClient(base_url=synapse_b.client_url, timeout=60,
                                 headers={"Authorization": f"Bearer {b_user_token}"}) as b:
        response = await b.get(f"{DOWNLOAD}/{mmr.own_name}/{media_id}")
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["content-type"] == "image/png"
    assert disposition_filename(response.headers["content-disposition"]) == "ours ☕.png"
    # We verified B's signature with B's keys, fetched from B (unless cached from a former test).
    assert synapse_b.count_requests("/_matrix/key/v2/server") >= keys_before


def _signed(key: SigningKey, origin: str, destination: str, uri: str) -> dict[str, str]:
    return {"Authorization": sign_request(key, origin, destination, "GET", uri)}


def _key_of(server: SynapseServer) -> SigningKey:
    return load_signing_key(str(server.signing_key_path))


async def _federation_get(mmr: Mmr, media_id: str, headers: dict[str, str]) -> httpx.Response:
    assert mmr.own_name is not None
    async with httpx.AsyncClient(base_url=mmr.url, verify=False, timeout=60) as client:
        return await client.get(f"{FEDERATION_DOWNLOAD}/{media_id}",
                                headers={"Host": mmr.own_name, **headers})


async def test_a_correctly_signed_request_gets_two_parts(
    serve_mmr: ServeMmr, synapse_b: SynapseServer,
) -> None:
    mmr = serve_mmr(tls=True)
    data = unique_bytes(5000)
    media_id = await _owned_media(mmr, data, "text/plain", "notes.txt")
    uri = f"{FEDERATION_DOWNLOAD}/{media_id}"
    assert mmr.own_name is not None
    response = await _federation_get(
        mmr, media_id, _signed(_key_of(synapse_b), synapse_b.server_name, mmr.own_name, uri)
    )
    assert response.status_code == 200
    boundary = boundary_of(response.headers["content-type"])
    assert boundary is not None

    async def body() -> AsyncIterator[bytes]:
        yield response.content

    part = await read_media_multipart(boundary, body())
    assert part.metadata == {}
    assert part.headers["content-type"] == "text/plain"
    assert part.headers["content-disposition"] == "inline; filename=notes.txt"
    assert b"".join([chunk async for chunk in part.body]) == data
    assert response.content.count(b"--" + boundary.encode()) == 3  # two parts and the close


async def test_unsigned_forged_or_misaddressed_requests_are_401(
    serve_mmr: ServeMmr, synapse_b: SynapseServer,
) -> None:
    mmr = serve_mmr(tls=True)
    media_id = await _owned_media(mmr, unique_bytes(), "image/png", None)
    uri = f"{FEDERATION_DOWNLOAD}/{media_id}"
    assert mmr.own_name is not None
    b_name, b_key = synapse_b.server_name, _key_of(synapse_b)
    attempts = {
        "unsigned": {},
        "bearer": {"Authorization": "Bearer abc"},
        "forged key": _signed(generate_signing_key("a_aaaa"), b_name, mmr.own_name, uri),
        "wrong destination": _signed(b_key, b_name, "elsewhere.example", uri),
        "other uri": _signed(b_key, b_name, mmr.own_name, uri + "x"),
        "garbage": {"Authorization": 'X-Matrix origin="x'},
    }
    for what, headers in attempts.items():
        response = await _federation_get(mmr, media_id, headers)
        assert response.status_code == 401, what
        assert response.json()["errcode"] == "M_UNAUTHORIZED", what


async def test_only_our_own_existing_media_is_served(
    serve_mmr: ServeMmr, synapse_b: SynapseServer,
) -> None:
    mmr = serve_mmr(tls=True)
    assert mmr.own_name is not None
    for media_id in ("DoesNotExist", "bad.id"):
        uri = f"{FEDERATION_DOWNLOAD}/{media_id}?timeout_ms=0"
        headers = _signed(_key_of(synapse_b), synapse_b.server_name, mmr.own_name, uri)
        async with httpx.AsyncClient(base_url=mmr.url, verify=False) as client:
            response = await client.get(uri, headers={"Host": mmr.own_name, **headers})
        assert response.status_code == 404


async def test_keys_can_come_through_a_notary(
    serve_mmr: ServeMmr, synapse_a: SynapseServer, synapse_b: SynapseServer,
) -> None:
    mmr = serve_mmr(tls=True, federation={"trustedKeyServers": [synapse_a.server_name]})
    data = unique_bytes()
    media_id = await _owned_media(mmr, data, "image/png", None)
    uri = f"{FEDERATION_DOWNLOAD}/{media_id}"
    assert mmr.own_name is not None
    queries_before = synapse_a.count_requests("POST /_matrix/key/v2/query")
    response = await _federation_get(
        mmr, media_id, _signed(_key_of(synapse_b), synapse_b.server_name, mmr.own_name, uri)
    )
    assert response.status_code == 200
    assert data in response.content
    assert synapse_a.wait_for_requests("POST /_matrix/key/v2/query", queries_before + 1) == (
        queries_before + 1
    )
    # And the notary's answer alone is enough: signed by B and countersigned by A.
    coordinator = InProcessCoordinator()
    client = FederationClient(mmr.config.federation, mmr.config.timeouts, coordinator)
    try:
        store = KeyStore(client, coordinator, [synapse_a.server_name])
        key_id = key_id_of(_key_of(synapse_b))
        keys, _ = await store.keys_from_notary(synapse_a.server_name, synapse_b.server_name, key_id)
        assert key_id in keys
    finally:
        await client.close()
        await coordinator.close()


async def test_pending_async_media_waits_up_to_timeout_ms_then_504(
    serve_mmr: ServeMmr, synapse_b: SynapseServer,
) -> None:
    mmr = serve_mmr(tls=True)
    async with mmr.as_owner() as owner:
        created = await owner.post("/_matrix/media/v1/create")
    media_id = created.json()["content_uri"].rsplit("/", 1)[1]
    assert mmr.own_name is not None
    uri = f"{FEDERATION_DOWNLOAD}/{media_id}?timeout_ms=200"
    headers = _signed(_key_of(synapse_b), synapse_b.server_name, mmr.own_name, uri)
    async with httpx.AsyncClient(base_url=mmr.url, verify=False) as client:
        response = await client.get(uri, headers={"Host": mmr.own_name, **headers})
    assert response.status_code == 504
    assert response.json()["errcode"] == "M_NOT_YET_UPLOADED"
