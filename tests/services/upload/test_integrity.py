"""Identical bytes are stored once, even uploaded at the same moment on two machines; quarantined
content is refused; a failed upload leaves no row, no object and no temp file.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from shared.db.repositories.media import set_quarantined
from tests.conftest import TEST_SECRET
from tests.services.upload.conftest import ConfigFactory, Serve
from tests.services.upload.helpers import (
    DEAD_REDIS,
    DOWNLOAD,
    UPLOAD,
    assert_error,
    create,
    media_path,
    put,
    race_two_puts,
    rows_of_user,
    rows_with_hash,
    sha256,
    slow_body,
    stored_objects,
    temp_files,
    unique_bytes,
    upload,
)


async def test_identical_uploads_on_two_machines_store_one_object(
    make_cluster_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    config = make_cluster_config()
    machines = [serve(config, machine_id=0), serve(config, machine_id=13)]
    data = unique_bytes(2 * 1024 * 1024)
    async with machines[0].client() as one, machines[1].client() as two:
        answers = await asyncio.gather(
            *(c.post(UPLOAD, content=slow_body(data, pause=0.001)) for c in (one, two, one, two))
        )
        assert [a.status_code for a in answers] == [200] * 4
        mxcs = {a.json()["content_uri"] for a in answers}
        assert len(mxcs) == 4
        for mxc in mxcs:
            assert (await one.get(f"{DOWNLOAD}/{media_path(mxc)}")).content == data
    runtime = await runtime_for(config)  # type: ignore[operator]
    rows = await rows_with_hash(runtime, sha256(data))
    assert len(rows) == 4
    assert len({(row.datastore_id, row.location) for row in rows}) == 1
    assert len(stored_objects(config)) == 1


async def test_identical_uploads_in_one_process_store_one_object(
    make_embedded_config: ConfigFactory, serve: Serve
) -> None:
    config = make_embedded_config()
    node = serve(config)
    data = unique_bytes(512 * 1024)
    async with node.client() as client:
        answers = await asyncio.gather(*(upload(client, data) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert len(stored_objects(config)) == 1


async def test_quarantined_content_is_refused(
    make_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    config = make_config()
    node = serve(config)
    data = unique_bytes(5000)
    runtime = await runtime_for(config)  # type: ignore[operator]
    async with node.client() as client:
        mxc = (await upload(client, data)).json()["content_uri"]
        origin, media_id = media_path(mxc).split("/")
        async with runtime.sessions() as session:
            assert await set_quarantined(session, origin, media_id, True)
            await session.commit()
        objects_before = stored_objects(config)
        body = assert_error(await upload(client, data), 403, "M_FORBIDDEN")
        assert "quarantined" in body["error"]
        reserved = (await create(client)).json()["content_uri"]
        assert_error(await put(client, reserved, data), 403, "M_FORBIDDEN")
        # Other content still goes in, also into the same reserved ID.
        assert (await put(client, reserved, unique_bytes())).status_code == 200
    assert len(await rows_with_hash(runtime, sha256(data))) == 1
    assert len(stored_objects(config)) == len(objects_before) + 1
    assert temp_files(config) == []


async def _wait_for(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_client_disconnect_mid_upload_leaves_nothing(
    make_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    config = make_config()
    node = serve(config)
    url = urlsplit(node.url)
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        f"POST {UPLOAD} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TEST_SECRET}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n".encode()
    )
    writer.write(unique_bytes(3 * 1024 * 1024))
    await writer.drain()
    await _wait_for(lambda: temp_files(config))  # the server is spooling the body
    writer.close()
    await writer.wait_closed()
    await _wait_for(lambda: not temp_files(config))
    runtime = await runtime_for(config)  # type: ignore[operator]
    assert await rows_of_user(runtime, "@sharedsecret") == 0
    assert stored_objects(config) == set()
    async with node.client() as client:
        assert (await upload(client, b"still serving")).status_code == 200


async def test_storage_failure_is_503_and_leaves_nothing(
    make_cluster_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    config = make_cluster_config()
    opts = dict(config.datastores[0].opts, accessSecret="not-the-secret")
    broken = config.model_copy(update={"datastores": [
        config.datastores[0].model_copy(update={"opts": opts})
    ]})
    node = serve(broken)
    async with node.client() as client:
        failed = await upload(client, unique_bytes(100_000))
        reserved = (await create(client)).json()["content_uri"]
        failed_put = await put(client, reserved, unique_bytes(100_000))
    assert_error(failed, 503, "M_UNKNOWN")
    assert_error(failed_put, 503, "M_UNKNOWN")
    runtime = await runtime_for(config)  # type: ignore[operator]
    assert await rows_of_user(runtime, "@sharedsecret") == 0
    assert temp_files(config) == []


async def test_without_redis_one_put_still_wins_and_the_loser_leaves_no_object(
    make_cluster_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    """Locks fail open without Redis; the database decides, and the loser's object is removed."""
    config = make_cluster_config(redis_url=DEAD_REDIS)
    machines = [serve(config, machine_id=0), serve(config, machine_id=14)]
    async with machines[0].client() as one, machines[1].client() as two:
        await race_two_puts(one, two, 256 * 1024)
    assert len(stored_objects(config)) == 1
    assert temp_files(config) == []
