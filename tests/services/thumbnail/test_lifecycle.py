"""The embedded default under hostile input, async uploads and pre-generation."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

from shared.config import MmrConfig
from tests.conftest import serve_all
from tests.services.thumbnail import media
from tests.services.thumbnail.conftest import Node, Serve, embedded_app
from tests.services.thumbnail.helpers import (
    stored_thumbnails,
    thumbnail,
    unique_jpeg,
    upload,
    wait_for_thumbnails,
)

RuntimeFor = Callable[..., Any]
ConfigFor = Callable[..., MmrConfig]


async def test_a_decompression_bomb_costs_one_worker_not_the_service(
    serve: Serve, embedded_config: ConfigFor
) -> None:
    # Within the pixel limit, so it reaches a decoder: 256 M pixels (256 MiB decoded) in a
    # few hundred KiB of PNG, against workers limited to 320 MiB of address space.
    config = embedded_config(thumbnails={"maxPixels": 400_000_000,
                                         "workerMemoryBytes": 320 * 1024 * 1024})
    node = serve(embedded_app(config), config)
    bomb = media.big_solid_png(16000, 16000)
    assert len(bomb) < 1_000_000
    async with node.client() as client:
        bomb_id = await upload(client, bomb, "image/png")
        refused = await thumbnail(client, bomb_id)
        served = await thumbnail(client, await upload(client, unique_jpeg(), "image/jpeg"))
    assert (refused.status_code, refused.json()["errcode"]) == (413, "M_TOO_LARGE")
    assert served.status_code == 200
    assert node.pool.workers_lost == 1


async def test_killed_workers_are_replaced_and_requests_keep_being_served(
    serve: Serve, embedded_config: ConfigFor
) -> None:
    config = embedded_config()
    node = serve(embedded_app(config), config)
    async with node.client() as client:
        assert (await thumbnail(client, await upload(client, unique_jpeg(), "image/jpeg"))).status_code == 200
        for pid in node.pool.pids:
            os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.1)
        response = await thumbnail(client, await upload(client, unique_jpeg(), "image/jpeg"))
    assert response.status_code == 200
    assert media.decode(response.content).size == (96, 96)


async def test_thumbnails_work_in_an_app_assembled_without_the_start_hook(
    embedded_config: ConfigFor,
) -> None:
    config = embedded_config()
    with serve_all(config) as server:
        node = Node(server.url, server.server.config.app, config)
        async with node.client() as client:
            response = await thumbnail(client, await upload(client, unique_jpeg(), "image/jpeg"))
    assert response.status_code == 200
    assert media.decode(response.content).size == (96, 96)


async def test_a_pending_async_upload_is_waited_for_then_504(
    serve: Serve, embedded_config: ConfigFor
) -> None:
    config = embedded_config()
    node = serve(embedded_app(config), config)
    async with node.client() as client:
        created = await client.post("/_matrix/media/v1/create")
        assert created.status_code == 200, created.text
        media_id = created.json()["content_uri"].rsplit("/", 1)[1]
        late = await thumbnail(client, media_id, timeout_ms=200)
        assert (late.status_code, late.json()["errcode"]) == (504, "M_NOT_YET_UPLOADED")
        waiting = asyncio.create_task(thumbnail(client, media_id, timeout_ms=20000))
        await asyncio.sleep(0.3)
        put = await client.put(f"/_matrix/media/v3/upload/localhost/{media_id}",
                               content=unique_jpeg(), headers={"Content-Type": "image/jpeg"})
        assert put.status_code == 200, put.text
        response = await waiting
    assert response.status_code == 200
    assert media.decode(response.content).size == (96, 96)


async def test_pregeneration_makes_the_configured_sizes_after_upload(
    serve: Serve, embedded_config: ConfigFor, runtime_for: RuntimeFor
) -> None:
    config = embedded_config(thumbnails={"pregenerate": True})
    node = serve(embedded_app(config), config)
    rt = await runtime_for(config)
    async with node.client() as client:
        media_id = await upload(client, unique_jpeg(1000, 800), "image/jpeg")
        rows = await wait_for_thumbnails(rt, media_id, 5)
        assert sorted((r.key.width, r.key.height, r.key.method) for r in rows) == [
            (32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
            (800, 600, "scale"),
        ]
        jobs = node.pool.jobs_run
        response = await thumbnail(client, media_id, 96, 96, "crop")
    assert response.status_code == 200
    assert node.pool.jobs_run == jobs  # served from storage, made by nobody this time
    assert len(await stored_thumbnails(rt, media_id)) == 5


async def test_the_workers_are_up_before_the_first_request(
    serve: Serve, embedded_config: ConfigFor
) -> None:
    config = embedded_config(thumbnails={"numWorkers": 2})
    node = serve(embedded_app(config), config)
    started = sorted(node.pool.pids)
    assert len(started) == 2 and node.pool.jobs_run == 0  # started at start, not by a request
    async with node.client() as client:
        response = await thumbnail(client, await upload(client, unique_jpeg(), "image/jpeg"))
    assert response.status_code == 200
    assert node.pool.jobs_run == 1 and sorted(node.pool.pids) == started
