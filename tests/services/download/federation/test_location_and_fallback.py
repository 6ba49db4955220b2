"""The other answer forms a peer may give: a `Location` part (mmr with a public S3 datastore as
the remote), and peers without the federation media endpoint or without multipart (a scripted
peer on loopback, since no current Synapse answers that way)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from shared.federation.multipart import boundary_of, read_media_multipart
from shared.federation.xmatrix import load_signing_key, sign_request
from tests.infra.http_server import free_port
from tests.infra.synapse import SynapseServer
from tests.services.download.federation.conftest import ServeMmr, TlsServerThread
from tests.services.download.helpers import (
    DOWNLOAD,
    FEDERATION_DOWNLOAD,
    disposition_filename,
    unique_bytes,
    upload,
)


async def test_a_location_part_is_followed_with_a_plain_get(
    serve_mmr: ServeMmr, synapse_a: SynapseServer,
) -> None:
    remote = serve_mmr("cluster", tls=True, public=True)
    data = unique_bytes(100_000)
    async with remote.as_owner() as owner:
        media_id = (await upload(owner, data, "image/webp", "w.webp")).rsplit("/", 1)[1]
    assert remote.own_name is not None

    # What the remote answers: `{}`, then a Location into its public bucket.
    uri = f"{FEDERATION_DOWNLOAD}/{media_id}"
    auth = sign_request(load_signing_key(str(synapse_a.signing_key_path)), synapse_a.server_name,
                        remote.own_name, "GET", uri)
    async with httpx.AsyncClient(base_url=remote.url, verify=False) as client:
        raw = await client.get(uri, headers={"Host": remote.own_name, "Authorization": auth})
    boundary = boundary_of(raw.headers["content-type"])
    assert raw.status_code == 200 and boundary is not None

    async def body() -> AsyncIterator[bytes]:
        yield raw.content

    part = await read_media_multipart(boundary, body())
    assert part.location is not None and part.location.startswith("http://127.0.0.1")

    # And a client of another mmr gets the bytes through it.
    local = serve_mmr()
    async with local.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{remote.own_name}/{media_id}")
    assert response.status_code == 200, response.text
    assert response.content == data
    assert response.headers["content-type"] == "image/webp"


class ScriptedPeer:
    """A federation peer on loopback (TLS) whose answers each test scripts by media ID prefix.

    `unknown-*`: the federation endpoint is unknown (404 M_UNRECOGNIZED), the legacy one serves.
    `plain-*`: the federation endpoint answers a plain, non-multipart body.
    `declared-*`: the legacy endpoint declares a Content-Length over any sane limit.
    """

    DATA = b"scripted peer bytes " * 100

    def __init__(self) -> None:
        self.requests: list[str] = []
        app = FastAPI()
        app.add_api_route("/_matrix/federation/v1/media/download/{media_id}", self.federation)
        app.add_api_route("/_matrix/media/v3/download/{server}/{media_id}", self.legacy)
        self.app = app

    async def federation(self, media_id: str, request: Request) -> Response:
        self.requests.append(f"federation {request.url.path}")
        assert request.headers["authorization"].startswith("X-Matrix ")
        if media_id.startswith("plain-"):
            return Response(self.DATA, media_type="text/plain",
                            headers={"Content-Disposition": "attachment; filename=plain.txt"})
        return JSONResponse({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"}, 404)

    async def legacy(self, media_id: str, request: Request) -> Response:
        self.requests.append(f"legacy {request.url.path}?{request.url.query}")
        if request.query_params.get("allow_remote") != "false":
            return JSONResponse({"errcode": "M_UNKNOWN", "error": "must not loop"}, 500)
        if media_id.startswith("declared-"):
            async def nothing() -> AsyncIterator[bytes]:
                yield b"x"

            return StreamingResponse(nothing(), media_type="video/mp4",
                                     headers={"Content-Length": str(50 * 1024**3)})
        return Response(self.DATA, media_type="application/pdf",
                        headers={"Content-Disposition": "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"})


@pytest.fixture
def scripted_peer(test_tls: tuple[Path, Path]) -> Iterator[tuple[ScriptedPeer, str]]:
    """Requested before `serve_mmr`, so it stops after the mmr that keeps connections to it."""
    peer = ScriptedPeer()
    port = free_port()
    with TlsServerThread(peer.app, port, *test_tls):
        yield peer, f"127.0.0.1:{port}"


async def test_an_unknown_federation_endpoint_falls_back_to_the_legacy_route(
    scripted_peer: tuple[ScriptedPeer, str], serve_mmr: ServeMmr,
) -> None:
    peer, name = scripted_peer
    mmr = serve_mmr()
    async with mmr.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{name}/unknown-1")
    assert response.status_code == 200, response.text
    assert response.content == ScriptedPeer.DATA
    assert response.headers["content-type"] == "application/pdf"
    assert disposition_filename(response.headers["content-disposition"]) == "résumé.pdf"
    assert peer.requests == [
        "federation /_matrix/federation/v1/media/download/unknown-1",
        f"legacy /_matrix/media/v3/download/{name}/unknown-1"
        "?allow_remote=false&allow_redirect=true&timeout_ms=20000",
    ]


async def test_a_plain_body_on_the_federation_route_still_works(
    scripted_peer: tuple[ScriptedPeer, str], serve_mmr: ServeMmr,
) -> None:
    peer, name = scripted_peer
    mmr = serve_mmr()
    async with mmr.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{name}/plain-1")
    assert response.status_code == 200, response.text
    assert response.content == ScriptedPeer.DATA
    assert response.headers["content-type"].startswith("text/plain")
    assert disposition_filename(response.headers["content-disposition"]) == "plain.txt"
    assert len(peer.requests) == 1


async def test_a_declared_size_over_the_limit_is_refused_before_reading(
    scripted_peer: tuple[ScriptedPeer, str], serve_mmr: ServeMmr,
) -> None:
    _, name = scripted_peer
    mmr = serve_mmr()
    async with mmr.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{name}/declared-1")
    assert response.status_code == 502
    assert response.json()["errcode"] == "M_TOO_LARGE"
