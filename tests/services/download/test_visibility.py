"""What is not served: quarantined media (404 or the replacement image), ignored hosts, frozen
media on the legacy routes; and what is noted: the last access, batched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.config import MmrConfig, parse_config
from shared.db.models import MediaRow
from shared.db.repositories.media import set_quarantined
from shared.runtime import Runtime
from tests.conftest import RunningMmr, embedded_raw_config, serve_all
from tests.services.download.conftest import ServeFactory
from tests.services.download.helpers import DOWNLOAD, LEGACY_DOWNLOAD, unique_bytes, upload

RuntimeFor = Callable[[MmrConfig], Awaitable[Runtime]]
PNG_PLACEHOLDER = b"\x89PNG\r\n\x1a\n placeholder"


async def quarantine(runtime_for: RuntimeFor, server: RunningMmr, mxc: str) -> None:
    origin, media_id = mxc.split("/")
    rt = await runtime_for(server.config)
    async with rt.sessions() as session:
        assert await set_quarantined(session, origin, media_id, True)
        await session.commit()


async def test_quarantined_media_is_404_on_every_route(
    mmr: RunningMmr, runtime_for: RuntimeFor
) -> None:
    async with mmr.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png")
        assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200
        await quarantine(runtime_for, mmr, mxc)
        for route in (DOWNLOAD, LEGACY_DOWNLOAD):
            response = await client.get(f"{route}/{mxc}")
            assert response.status_code == 404
            assert response.json()["errcode"] == "M_NOT_FOUND"


async def test_quarantined_media_can_be_replaced_by_the_configured_image(
    serve_embedded: ServeFactory, runtime_for: RuntimeFor, tmp_path: Path
) -> None:
    placeholder = tmp_path / "quarantined.png"
    placeholder.write_bytes(PNG_PLACEHOLDER)
    server = serve_embedded(quarantine={"replaceDownloads": True, "thumbnailPath": str(placeholder)})
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png")
        await quarantine(runtime_for, server, mxc)
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert response.status_code == 200
    assert response.content == PNG_PLACEHOLDER
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "no-store"


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
