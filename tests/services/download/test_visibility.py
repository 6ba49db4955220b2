"""What is not served: quarantined media (404 or the replacement image), ignored hosts, frozen
media on the legacy routes; and what is noted: the last access, batched."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from services.admin.quarantining import set_quarantine_for_hash
from shared.config import MmrConfig, parse_config
from shared.db.models import MediaRow
from shared.media.records import RECORD_TTL_SECONDS
from shared.runtime import Runtime
from tests.conftest import RunningMmr, embedded_raw_config, serve_all
from tests.services.download.conftest import ServeFactory
from tests.services.download.helpers import DOWNLOAD, LEGACY_DOWNLOAD, unique_bytes, upload

RuntimeFor = Callable[[MmrConfig], Awaitable[Runtime]]
PNG_PLACEHOLDER = b"\x89PNG\r\n\x1a\n placeholder"


async def quarantine(server: RunningMmr, mxc: str) -> None:
    """Quarantine as an operator does, through the server's admin API: the change is announced,
    so every process (and its cache of media records) hears of it at once."""
    async with server.client() as client:
        response = await client.post(f"/_matrix/media/unstable/admin/quarantine/{mxc}")
    assert response.status_code == 200, response.text
    assert response.json()["num_quarantined"] >= 1


async def test_quarantined_media_is_404_on_every_route(mmr: RunningMmr) -> None:
    async with mmr.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png")
        assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200
        await quarantine(mmr, mxc)
        for route in (DOWNLOAD, LEGACY_DOWNLOAD):
            response = await client.get(f"{route}/{mxc}")
            assert response.status_code == 404
            assert response.json()["errcode"] == "M_NOT_FOUND"


async def test_quarantined_media_can_be_replaced_by_the_configured_image(
    serve_embedded: ServeFactory, tmp_path: Path
) -> None:
    placeholder = tmp_path / "quarantined.png"
    placeholder.write_bytes(PNG_PLACEHOLDER)
    server = serve_embedded(quarantine={"replaceDownloads": True, "thumbnailPath": str(placeholder)})
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png")
        await quarantine(server, mxc)
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert response.status_code == 200
    assert response.content == PNG_PLACEHOLDER
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "no-store"


async def test_a_quarantine_through_another_process_is_seen_at_once(
    serve_cluster: ServeFactory, runtime_for: RuntimeFor
) -> None:
    """The serving process keeps media records in memory (`shared.media.records`); another
    process's quarantine reaches it through the media-changed announcement, long before an
    entry would expire on its own."""
    server = serve_cluster()
    data = unique_bytes()
    async with server.client() as client:
        mxc = await upload(client, data, "image/png")
        for _ in range(3):  # read, then served from the record cache
            assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200
        other_process = await runtime_for(server.config)
        origin = mxc.split("/")[0]
        assert await set_quarantine_for_hash(other_process, hashlib.sha256(data).hexdigest(),
                                             True, origin) == 1
        # Pub/sub delivery is asynchronous, but takes milliseconds: far below the cache's TTL.
        deadline = time.monotonic() + RECORD_TTL_SECONDS / 4
        while (status := (await client.get(f"{DOWNLOAD}/{mxc}")).status_code) == 200:
            assert time.monotonic() < deadline, "the quarantine was not announced to the server"
            await asyncio.sleep(0.02)
        assert status == 404
        await set_quarantine_for_hash(other_process, hashlib.sha256(data).hexdigest(), False, origin)
        deadline = time.monotonic() + RECORD_TTL_SECONDS / 4
        while (status := (await client.get(f"{DOWNLOAD}/{mxc}")).status_code) == 404:
            assert time.monotonic() < deadline, "the release was not announced to the server"
            await asyncio.sleep(0.02)
        assert status == 200


async def test_media_of_ignored_hosts_is_404_without_asking_them(serve_embedded: ServeFactory) -> None:
    server = serve_embedded(federation={"ignoredHosts": ["Evil.Example"]})
    async with server.client() as client:
        response = await client.get(f"{DOWNLOAD}/evil.example/abcdef")
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"


async def test_frozen_media_is_served_only_on_the_authenticated_route(mmr: RunningMmr) -> None:
    async with mmr.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png")
        assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200
        assert (await client.get(f"{LEGACY_DOWNLOAD}/{mxc}")).status_code == 404


async def test_the_v1_route_needs_a_token(mmr: RunningMmr) -> None:
    async with mmr.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png")
    async with mmr.client(token=None) as anonymous:
        response = await anonymous.get(f"{DOWNLOAD}/{mxc}")
    assert response.status_code == 401
    assert response.json()["errcode"] == "M_MISSING_TOKEN"


async def last_access(rt: Runtime, mxc: str) -> int | None:
    origin, media_id = mxc.split("/")
    async with rt.sessions() as session:
        stmt = select(MediaRow.last_access_ts).where(
            MediaRow.origin == origin, MediaRow.media_id == media_id
        )
        value: int | None = (await session.execute(stmt)).scalar_one()
        return value


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
async def test_downloads_record_the_last_access_within_the_flush_interval(
    request: pytest.FixtureRequest, runtime_for: RuntimeFor, mode: str
) -> None:
    factory: ServeFactory = request.getfixturevalue(f"serve_{mode}")
    server = factory(downloads={"accessFlushSeconds": 0.3})
    async with server.client() as client:
        mxcs = [await upload(client, unique_bytes(), "image/png") for _ in range(3)]
        rt = await runtime_for(server.config)
        before = int(time.time() * 1000)
        for mxc in mxcs:
            assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200
    deadline = time.monotonic() + 10
    while await last_access(rt, mxcs[-1]) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for mxc in mxcs:
        recorded = await last_access(rt, mxc)
        assert recorded is not None and recorded >= before


async def test_accesses_are_written_in_a_batch_not_per_request(
    tmp_path: Path, runtime_for: RuntimeFor
) -> None:
    config = parse_config(embedded_raw_config(tmp_path, downloads={"accessFlushSeconds": 3600}))
    with serve_all(config) as thread:
        server = RunningMmr(thread.url, config, tmp_path)
        async with server.client() as client:
            mxc = await upload(client, unique_bytes(), "image/png")
            for _ in range(5):
                assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200
        rt = await runtime_for(config)
        assert await last_access(rt, mxc) is None
    # Stopping the process flushes what it had batched.
    assert await last_access(rt, mxc) is not None
