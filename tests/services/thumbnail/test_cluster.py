"""A cluster on PostgreSQL, Redis and SeaweedFS S3 with two thumbnail processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key

from services.thumbnail.app import create_app as create_thumbnail_app
from shared.config import parse_config
from shared.federation.multipart import boundary_of, read_media_multipart
from shared.federation.xmatrix import sign_request
from shared.media.changes import announce_media_changed
from shared.storage.keys import content_key
from tests.conftest import SERVER_NAME, cluster_raw_config
from tests.infra.seaweedfs import S3Server
from tests.services.download.conftest import public_bucket
from tests.services.thumbnail import media
from tests.services.thumbnail.conftest import Node, Serve, uploads_app
from tests.services.thumbnail.helpers import (
    FEDERATION,
    LEGACY,
    quarantine,
    stored_thumbnails,
    thumbnail,
    unique_jpeg,
    upload,
    wait_for_thumbnails,
)

RuntimeFor = Callable[..., Any]
Cluster = Callable[..., list[Node]]


async def test_one_generation_however_many_processes_ask_at_once(
    cluster: Cluster, runtime_for: RuntimeFor
) -> None:
    uploads, first, second = cluster(2)
    async with uploads.client() as client:
        media_id = await upload(client, unique_jpeg(2000, 1500), "image/jpeg")
    async with first.client() as a, second.client() as b:
        responses = await asyncio.gather(*(
            thumbnail(client, media_id, 320, 240, "scale") for client in [a, b] * 6
        ))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert first.pool.jobs_run + second.pool.jobs_run == 1
    rt = await runtime_for(first.config)
    [row] = await stored_thumbnails(rt, media_id)
    assert row.datastore_id == "s3" and row.location == content_key(row.sha256)
    assert await rt.datastores.get("s3").exists(row.location)


async def test_pregeneration_runs_on_the_thumbnail_processes(
    cluster: Cluster, runtime_for: RuntimeFor
) -> None:
    uploads, first, second = cluster(2, thumbnails={"pregenerate": True})
    async with uploads.client() as client:
        media_id = await upload(client, unique_jpeg(1000, 800), "image/jpeg")
    rt = await runtime_for(first.config)
    rows = await wait_for_thumbnails(rt, media_id, 5)
    assert len(rows) == 5
    assert first.pool.jobs_run + second.pool.jobs_run == 5  # each size made once, by one of them


async def _prime_keys(rt: Any, server_name: str, key: Any) -> None:
    """Put a server's verify key where the key store looks first (its cluster-wide cache)."""
    keys = {f"ed25519:{key.version}": encode_verify_key_base64(get_verify_key(key))}
    await rt.coordinator.cache_set(f"fed:keys:{server_name}", json.dumps(keys).encode(), 3600)


async def test_federation_gets_the_client_bytes_in_multipart(
    cluster: Cluster, runtime_for: RuntimeFor
) -> None:
    uploads, thumbs = cluster(1)
    key = generate_signing_key("t1")
    origin = "remote.example"
    await _prime_keys(await runtime_for(thumbs.config), origin, key)
    async with uploads.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
    uri = f"{FEDERATION}/{media_id}?width=96&height=96&method=crop"
    auth = sign_request(key, origin, SERVER_NAME, "GET", uri)
    async with thumbs.client(token=None) as server, thumbs.client() as user:
        federated = await server.get(uri, headers={"Authorization": auth})
        unsigned = await server.get(uri)
        from_client = await thumbnail(user, media_id, 96, 96, "crop")
    assert federated.status_code == 200, federated.text
    boundary = boundary_of(federated.headers["content-type"])
    assert boundary is not None

    async def body() -> Any:
        yield federated.content

    part = await read_media_multipart(boundary, body())
    data = b"".join([chunk async for chunk in part.body])
    assert part.metadata == {}
    assert part.headers["content-type"] == "image/jpeg"
    assert part.headers["content-disposition"] == "inline; filename=thumbnail.jpg"
    assert data == from_client.content
    assert media.decode(data).size == (96, 96)
    assert unsigned.status_code == 401


async def test_a_quarantine_announced_anywhere_reaches_every_thumbnail_process_at_once(
    cluster: Cluster, runtime_for: RuntimeFor
) -> None:
    uploads, first, second = cluster(2)
    async with uploads.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
    async with first.client() as a, second.client() as b:
        before = [await thumbnail(a, media_id), await thumbnail(b, media_id)]
        assert [r.headers["content-type"] for r in before] == ["image/jpeg"] * 2
        admin = await runtime_for(first.config)
        await quarantine(admin, media_id)
        await announce_media_changed(admin.coordinator, SERVER_NAME, media_id)
        deadline = asyncio.get_running_loop().time() + 2
        while True:
            after = [await thumbnail(a, media_id), await thumbnail(b, media_id)]
            types = [r.headers["content-type"] for r in after]
            if types == ["image/png"] * 2 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
    assert types == ["image/png"] * 2  # the placeholder, well before answers expire by age


async def test_a_public_datastore_is_redirected_to_where_redirects_are_allowed(
    serve: Serve, pg_url: str, redis_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = public_bucket(s3_server)
    raw = cluster_raw_config(tmp_path, pg_url, redis_url, s3_server, bucket,
                             repo={"freezeUnauthenticatedMedia": False})
    raw["datastores"][0]["opts"]["publicBaseUrl"] = f"{s3_server.endpoint}/{bucket}"
    config = parse_config(raw)
    uploads = serve(uploads_app(config), config)
    thumbs = serve(create_thumbnail_app(config, machine_id=1), config)
    async with uploads.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
    async with thumbs.client() as client:
        redirected = await thumbnail(client, media_id)
        legacy = await thumbnail(client, media_id, path=LEGACY.format(version="v3"))
        legacy_redirect = await thumbnail(client, media_id, path=LEGACY.format(version="v3"),
                                          allow_redirect="true")
    assert redirected.status_code == 307
    location = redirected.headers["location"]
    assert location.startswith(f"{s3_server.endpoint}/{bucket}/")
    async with httpx.AsyncClient() as anyone:
        public = await anyone.get(location)
    assert public.status_code == 200 and media.decode(public.content).size == (96, 96)
    assert legacy.status_code == 200 and legacy.content == public.content  # no allow_redirect
    assert (legacy_redirect.status_code, legacy_redirect.headers["location"]) == (307, location)


async def test_a_bomb_on_one_process_leaves_both_serving(cluster: Cluster) -> None:
    uploads, first, second = cluster(2)
    async with uploads.client() as client:
        bomb = await upload(client, media.declared_huge_png(), "image/png")
        good = await upload(client, unique_jpeg(), "image/jpeg")
    async with first.client() as a, second.client() as b:
        refused = await thumbnail(a, bomb)
        served = await asyncio.gather(thumbnail(a, good, 32, 32), thumbnail(b, good, 96, 96))
    assert (refused.status_code, refused.json()["errcode"]) == (413, "M_TOO_LARGE")
    assert [r.status_code for r in served] == [200, 200]
