"""Downloads of a created-but-not-uploaded ID wait for the PUT (`timeout_ms`), else 504.

The wake-up goes through the coordinator: in-process in the embedded default, Redis pub/sub
between the machines of a cluster.
"""

from __future__ import annotations

import asyncio
import time

from shared.media.pending import RECHECK_SECONDS, wait_seconds
from tests.conftest import SERVER_NAME
from tests.services.upload.conftest import ConfigFactory, Serve
from tests.services.upload.helpers import (
    DEAD_REDIS,
    DOWNLOAD,
    LEGACY_DOWNLOAD,
    assert_error,
    create,
    download_woken_by_put,
    media_path,
)


def test_timeout_ms_defaults_to_20s_and_is_capped_at_60s() -> None:
    assert wait_seconds(None) == 20
    assert wait_seconds(1500) == 1.5
    assert wait_seconds(10**9) == 60
    assert wait_seconds(-5) == 0


async def test_pending_download_times_out_with_504(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config())
    async with node.client() as client:
        mxc = (await create(client)).json()["content_uri"]
        started = time.monotonic()
        response = await client.get(f"{DOWNLOAD}/{media_path(mxc)}", params={"timeout_ms": 300})
        waited = time.monotonic() - started
        # The legacy route answers 504 too: nothing is known yet that could be frozen.
        legacy = await client.get(f"{LEGACY_DOWNLOAD}/{media_path(mxc)}", params={"timeout_ms": 0})
    assert_error(response, 504, "M_NOT_YET_UPLOADED")
    assert 0.3 <= waited < 3
    assert_error(legacy, 504, "M_NOT_YET_UPLOADED")


async def test_unknown_and_expired_ids_are_404_without_waiting(
    make_config: ConfigFactory, serve: Serve
) -> None:
    node = serve(make_config(uploads={"maxAgeSeconds": 1}))
    async with node.client() as client:
        unknown = await client.get(f"{DOWNLOAD}/{SERVER_NAME}/neverCreated", params={"timeout_ms": 20000})
        assert_error(unknown, 404, "M_NOT_FOUND")
        created = (await create(client)).json()
        await asyncio.sleep(max(created["unused_expires_at"] / 1000 - time.time(), 0) + 0.1)
        started = time.monotonic()
        expired = await client.get(f"{DOWNLOAD}/{media_path(created['content_uri'])}")
    assert_error(expired, 404, "M_NOT_FOUND")
    assert time.monotonic() - started < 2


async def test_waiting_download_wakes_when_the_put_lands(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config())
    async with node.client() as waiter, node.client() as uploader:
        # Woken by the notification, not by the safety-net recheck of the database.
        await download_woken_by_put(waiter, uploader, RECHECK_SECONDS / 2)


async def test_download_on_one_machine_woken_by_put_on_another(
    make_cluster_config: ConfigFactory, serve: Serve
) -> None:
    config = make_cluster_config()
    download_machine, upload_machine = serve(config, machine_id=0), serve(config, machine_id=9)
    async with download_machine.client() as waiter, upload_machine.client() as uploader:
        await download_woken_by_put(waiter, uploader, RECHECK_SECONDS / 2)


async def test_waiting_survives_an_unreachable_redis(
    make_cluster_config: ConfigFactory, serve: Serve
) -> None:
    """No pub/sub: the waiter polls the database instead, and still gets the media."""
    node = serve(make_cluster_config(redis_url=DEAD_REDIS))
    async with node.client() as waiter, node.client() as uploader:
        await download_woken_by_put(waiter, uploader, RECHECK_SECONDS / 2)
