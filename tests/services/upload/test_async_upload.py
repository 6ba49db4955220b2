"""Async uploads (Matrix 1.7, MSC2246): `POST /create` then `PUT /upload/{server}/{id}`.

Every answer the spec names is checked, in the embedded default and on a cluster node, and the
409 for a second PUT is decided before the body is read.
"""

from __future__ import annotations

import asyncio
import time

from shared.db.repositories.reservations import Reservation, insert_reservation
from shared.ids.media_id import new_media_id
from tests.conftest import SERVER_NAME
from tests.services.upload.conftest import ConfigFactory, Serve
from tests.services.upload.helpers import (
    DOWNLOAD,
    UPLOAD,
    assert_error,
    create,
    media_path,
    put,
    race_two_puts,
    rows_with_hash,
    sha256,
    slow_body,
    stored_objects,
    temp_files,
    unique_bytes,
)


async def test_create_then_put_then_download(make_config: ConfigFactory, serve: Serve) -> None:
    config = make_config(uploads={"maxAgeSeconds": 600})
    node = serve(config)
    data = unique_bytes(4096)
    async with node.client() as client:
        before = int(time.time() * 1000)
        created = await create(client)
        assert created.status_code == 200, created.text
        body = created.json()
        assert body["content_uri"].startswith(f"mxc://{SERVER_NAME}/")
        assert before + 600_000 <= body["unused_expires_at"] <= int(time.time() * 1000) + 600_000
        uploaded = await put(client, body["content_uri"], data, "image/png", params={"filename": "a.png"})
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json() == {}
        got = await client.get(f"{DOWNLOAD}/{media_path(body['content_uri'])}")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"] == "inline; filename=a.png"


async def test_second_put_is_409_before_the_body_is_read(
    make_config: ConfigFactory, serve: Serve
) -> None:
    # minBytes 1 and maxBytes 100: were the body looked at, these PUTs would get 400 or 413.
    node = serve(make_config(uploads={"minBytes": 1, "maxBytes": 100}))
    async with node.client() as client:
        mxc = (await create(client)).json()["content_uri"]
        assert (await put(client, mxc, b"first")).status_code == 200
        empty = await client.put(f"{UPLOAD}/{media_path(mxc)}", content=b"")
        assert_error(empty, 409, "M_CANNOT_OVERWRITE_MEDIA")
        huge = await put(client, mxc, b"x" * 1000)
        assert_error(huge, 409, "M_CANNOT_OVERWRITE_MEDIA")
        got = await client.get(f"{DOWNLOAD}/{media_path(mxc)}")
    assert got.content == b"first"


async def test_put_to_an_id_never_created_is_404(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config())
    async with node.client() as client:
        response = await put(client, f"mxc://{SERVER_NAME}/neverCreatedAnywhere", b"data")
        assert_error(response, 404, "M_NOT_FOUND")
        # An ID of a sync upload was never created by /create either: it has content, so 409.
        mxc = (await client.post(UPLOAD, content=b"sync")).json()["content_uri"]
        assert_error(await put(client, mxc, b"again"), 409, "M_CANNOT_OVERWRITE_MEDIA")


async def test_put_to_another_servers_id_is_404(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config())
    async with node.client() as client:
        mxc = (await create(client)).json()["content_uri"]
        media_id = media_path(mxc).split("/")[1]
        response = await put(client, f"mxc://other.example.org/{media_id}", b"data")
    assert_error(response, 404, "M_NOT_FOUND")


async def test_put_after_expiry_is_404(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config(uploads={"maxAgeSeconds": 1}))
    async with node.client() as client:
        created = (await create(client)).json()
        await asyncio.sleep(max(created["unused_expires_at"] / 1000 - time.time(), 0) + 0.1)
        response = await put(client, created["content_uri"], b"too late")
    assert_error(response, 404, "M_NOT_FOUND")


async def test_put_to_another_users_id_is_403(
    make_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    config = make_config()
    node = serve(config)
    runtime = await runtime_for(config)  # type: ignore[operator]
    media_id = new_media_id(runtime.ids)
    now = int(time.time() * 1000)
    async with runtime.sessions() as session:
        await insert_reservation(
            session, Reservation(SERVER_NAME, media_id, "@bob:localhost", now, now + 60_000)
        )
        await session.commit()
    async with node.client() as client:
        response = await put(client, f"mxc://{SERVER_NAME}/{media_id}", b"not yours")
    assert_error(response, 403, "M_FORBIDDEN")


async def test_too_large_put_is_413_and_the_id_stays_usable(
    make_config: ConfigFactory, serve: Serve
) -> None:
    config = make_config(uploads={"maxBytes": 1000})
    node = serve(config)
    async with node.client() as client:
        mxc = (await create(client)).json()["content_uri"]
        declared = await put(client, mxc, b"x" * 1001)
        assert_error(declared, 413, "M_TOO_LARGE")
        # No Content-Length: the limit is enforced while the body streams in.
        streamed = await client.put(f"{UPLOAD}/{media_path(mxc)}", content=slow_body(b"y" * 5000, 500, 0))
        assert_error(streamed, 413, "M_TOO_LARGE")
        assert temp_files(config) == []
        assert (await put(client, mxc, b"fits")).status_code == 200
        got = await client.get(f"{DOWNLOAD}/{media_path(mxc)}")
    assert got.content == b"fits"


async def test_two_concurrent_puts_to_one_id_on_two_machines(
    make_cluster_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    config = make_cluster_config()
    machines = [serve(config, machine_id=0), serve(config, machine_id=7)]
    async with machines[0].client() as first, machines[1].client() as second:
        race = await race_two_puts(first, second, 1024 * 1024)
        got = await second.get(f"{DOWNLOAD}/{media_path(race.mxc)}")
    assert got.content == race.winner
    runtime = await runtime_for(config)  # type: ignore[operator]
    assert len(await rows_with_hash(runtime, sha256(race.winner))) == 1
    assert await rows_with_hash(runtime, sha256(race.loser)) == []
    assert len(stored_objects(config)) == 1


async def test_two_concurrent_puts_to_one_id_in_one_process(
    make_embedded_config: ConfigFactory, serve: Serve
) -> None:
    config = make_embedded_config()
    node = serve(config)
    async with node.client() as first, node.client() as second:
        await race_two_puts(first, second, 512 * 1024)
    assert len(stored_objects(config)) == 1
