"""Remote media over real federation: mmr asks Synapse B for B's media, signed as Synapse A.

B only answers a request whose X-Matrix signature it verified with A's keys (fetched from A), so
every 200 here is a real signature check by a real implementation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from shared.config import MmrConfig
from shared.runtime import Runtime
from tests.infra.http_server import free_port
from tests.infra.synapse import SynapseServer
from tests.services.download.conftest import temp_files
from tests.services.download.federation.conftest import ServeMmr
from tests.services.download.federation.helpers import federation_requests, media_id_of, stored_record
from tests.services.download.helpers import (
    DOWNLOAD,
    LEGACY_DOWNLOAD,
    disposition_filename,
    unique_bytes,
)

RuntimeFor = Callable[[MmrConfig], Awaitable[Runtime]]


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
async def test_remote_media_is_fetched_once_then_served_from_the_cache(
    serve_mmr: ServeMmr, synapse_a: SynapseServer, synapse_b: SynapseServer, b_uploader_token: str,
    runtime_for: RuntimeFor, mode: str,
) -> None:
    data = unique_bytes(300_000)
    mxc = synapse_b.upload(b_uploader_token, data, "image/png", filename="🐔 chicken.png")
    media_id = media_id_of(mxc)
    mmr = serve_mmr(mode)
    async with mmr.as_client() as client:
        first = await client.get(f"{DOWNLOAD}/{synapse_b.server_name}/{media_id}")
        assert first.status_code == 200, first.text
        assert first.content == data
        assert first.headers["content-type"] == "image/png"
        assert first.headers["content-disposition"].startswith("inline")
        assert disposition_filename(first.headers["content-disposition"]) == "🐔 chicken.png"
        assert synapse_b.wait_for_requests(media_id, 1) >= 1
        assert federation_requests(synapse_b, media_id) == 1
        # B checked our signature with A's keys, which it fetched from A.
        assert synapse_a.count_requests("/_matrix/key/v2/server") >= 1

        again = await client.get(f"{DOWNLOAD}/{synapse_b.server_name}/{media_id}")
        ranged = await client.get(f"{DOWNLOAD}/{synapse_b.server_name}/{media_id}",
                                  headers={"Range": "bytes=10-19"})
    assert (again.status_code, again.content) == (200, data)
    assert (ranged.status_code, ranged.content) == (206, data[10:20])
    assert federation_requests(synapse_b, media_id) == 1

    rt = await runtime_for(mmr.config)
    record = await stored_record(rt, synapse_b.server_name, media_id)
    assert record is not None and record.size_bytes == len(data) and record.user_id is None
    assert record.datastore_id == rt.datastores.for_kind("remote_media").id


async def test_remote_media_without_a_filename_or_type_is_attachment_octet_stream(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str,
) -> None:
    data = unique_bytes()
    mxc = synapse_b.upload(b_uploader_token, data, "text/html")
    mmr = serve_mmr()
    async with mmr.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{synapse_b.server_name}/{media_id_of(mxc)}")
    assert response.content == data
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-disposition"] == "attachment"


async def test_remote_media_over_the_limit_is_502_too_large_and_nothing_is_kept(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str, runtime_for: RuntimeFor,
) -> None:
    mxc = synapse_b.upload(b_uploader_token, unique_bytes(3 * 1024 * 1024), "video/mp4")
    media_id = media_id_of(mxc)
    mmr = serve_mmr(downloads={"maxBytes": 1024 * 1024})
    async with mmr.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{synapse_b.server_name}/{media_id}")
        assert response.status_code == 502
        assert response.json()["errcode"] == "M_TOO_LARGE"
        # The failure is remembered: asking again does not download three megabytes again.
        again = await client.get(f"{DOWNLOAD}/{synapse_b.server_name}/{media_id}")
    assert (again.status_code, again.json()["errcode"]) == (502, "M_TOO_LARGE")
    assert federation_requests(synapse_b, media_id) == 1
    rt = await runtime_for(mmr.config)
    assert await stored_record(rt, synapse_b.server_name, media_id) is None
    assert not list((mmr.data_dir / "media").rglob("*"))
    assert temp_files(mmr.data_dir) == []


async def test_media_the_remote_does_not_have_is_404(
    serve_mmr: ServeMmr, synapse_b: SynapseServer
) -> None:
    mmr = serve_mmr()
    async with mmr.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{synapse_b.server_name}/NoSuchMediaHere")
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"


async def test_legacy_allow_remote_false_never_asks_the_remote(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str,
) -> None:
    data = unique_bytes()
    media_id = media_id_of(synapse_b.upload(b_uploader_token, data, "image/png"))
    mmr = serve_mmr(repo={"freezeUnauthenticatedMedia": False})
    path = f"{LEGACY_DOWNLOAD}/{synapse_b.server_name}/{media_id}"
    async with mmr.as_client() as client:
        refused = await client.get(path, params={"allow_remote": "false"})
        assert refused.status_code == 404
        assert federation_requests(synapse_b, media_id) == 0
        fetched = await client.get(path)
        cached = await client.get(path, params={"allow_remote": "false"})
    assert (fetched.status_code, fetched.content) == (200, data)
    assert (cached.status_code, cached.content) == (200, data)


async def test_frozen_legacy_routes_do_not_fetch_remote_media(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str,
) -> None:
    media_id = media_id_of(synapse_b.upload(b_uploader_token, unique_bytes(), "image/png"))
    mmr = serve_mmr()  # freezeUnauthenticatedMedia defaults to true
    async with mmr.as_client() as client:
        response = await client.get(f"{LEGACY_DOWNLOAD}/{synapse_b.server_name}/{media_id}")
    assert response.status_code == 404
    assert federation_requests(synapse_b, media_id) == 0


@pytest.mark.parametrize("by_name", [False, True])
async def test_the_deny_list_is_checked_on_the_resolved_address(
    serve_mmr: ServeMmr, synapse_b: SynapseServer, b_uploader_token: str, by_name: bool,
) -> None:
    media_id = media_id_of(synapse_b.upload(b_uploader_token, unique_bytes(), "image/png"))
    # `localhost:<port>` is a name; only its resolved address reveals it as loopback.
    server = synapse_b.server_name.replace("127.0.0.1", "localhost") if by_name else synapse_b.server_name
    mmr = serve_mmr(federation={"deniedNetworks": ["127.0.0.0/8", "::1/128"]})
    async with mmr.as_client() as client:
        response = await client.get(f"{DOWNLOAD}/{server}/{media_id}")
    assert response.status_code == 502
    assert federation_requests(synapse_b, media_id) == 0


class ConnectionCounter:
    """A TCP listener that counts connection attempts and answers none of them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectionCounter:
        async def count(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(count, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
async def test_a_dead_remote_is_502_and_not_asked_again_while_the_failure_is_cached(
    serve_mmr: ServeMmr, mode: str,
) -> None:
    port = free_port()
    dead = f"127.0.0.1:{port}"
    first, second = serve_mmr(mode), serve_mmr(mode)
    async with first.as_client() as client:
        started = time.monotonic()
        response = await client.get(f"{DOWNLOAD}/{dead}/SomeMedia")
        assert time.monotonic() - started < 20
    assert response.status_code == 502
    assert response.json()["errcode"] == "M_UNKNOWN"
    # The server comes back, but the failure is cached (cluster-wide: the second node too).
    async with ConnectionCounter(port) as listener:
        for node in (first, second) if mode == "cluster" else (first,):
            async with node.as_client() as client:
                again = await client.get(f"{DOWNLOAD}/{dead}/SomeMedia")
            assert again.status_code == 502
        assert listener.connections == 0
