"""Upload limits: sizes, `/config`, pending creates, per-user quotas and content types.

Every refusal is a clear 4xx naming the limit, and leaves no row, no object and no temp file.
(The shared-secret token acts as the user `@sharedsecret`, which the quota globs below match.)
"""

from __future__ import annotations

import asyncio

from tests.services.upload.conftest import ConfigFactory, Serve
from tests.services.upload.helpers import (
    assert_error,
    create,
    put,
    rows_of_user,
    slow_body,
    stored_objects,
    temp_files,
    unique_bytes,
    upload,
)

USER = "@sharedsecret"


async def test_max_and_min_bytes_declared_and_streamed(
    make_config: ConfigFactory, serve: Serve
) -> None:
    config = make_config(uploads={"maxBytes": 1000, "minBytes": 10})
    node = serve(config)
    async with node.client() as client:
        assert_error(await upload(client, b"x" * 1001), 413, "M_TOO_LARGE")
        chunked = await client.post("/_matrix/media/v3/upload", content=slow_body(b"x" * 3000, 500, 0))
        assert_error(chunked, 413, "M_TOO_LARGE")
        assert_error(await upload(client, b"tiny"), 400, "M_UNKNOWN")
        small_chunked = await client.post("/_matrix/media/v3/upload", content=slow_body(b"tiny", 2, 0))
        assert_error(small_chunked, 400, "M_UNKNOWN")
        assert (await upload(client, b"x" * 1000)).status_code == 200
    assert temp_files(config) == []
    assert len(stored_objects(config)) == 1


async def test_config_reports_the_upload_limit(make_embedded_config: ConfigFactory, serve: Serve) -> None:
    default = serve(make_embedded_config(uploads={"maxBytes": 5000}))
    reported = serve(make_embedded_config(uploads={"maxBytes": 5000, "reportedMaxBytes": 4000}))
    hidden = serve(make_embedded_config(uploads={"maxBytes": 5000, "reportedMaxBytes": -1}))
    answers = []
    for node in (default, reported, hidden):
        async with node.client() as client:
            for path in ("/_matrix/client/v1/media/config", "/_matrix/media/v3/config"):
                response = await client.get(path)
                assert response.status_code == 200
                answers.append(response.json())
    assert answers == [{"m.upload.size": 5000}] * 2 + [{"m.upload.size": 4000}] * 2 + [{}] * 2


async def test_too_many_pending_creates_is_429_with_retry_after(
    make_config: ConfigFactory, serve: Serve
) -> None:
    node = serve(make_config(uploads={"maxPending": 2, "maxAgeSeconds": 3600}))
    async with node.client() as client:
        first = (await create(client)).json()["content_uri"]
        assert (await create(client)).status_code == 200
        refused = await create(client)
        body = assert_error(refused, 429, "M_LIMIT_EXCEEDED")
        assert 3500 <= int(refused.headers["retry-after"]) <= 3600
        assert 3_500_000 <= body["retry_after_ms"] <= 3_600_000
        assert "maxPending" in body["error"]
        # Filling one frees a slot.
        assert (await put(client, first, unique_bytes())).status_code == 200
        assert (await create(client)).status_code == 200


async def test_pending_limit_holds_across_machines(
    make_cluster_config: ConfigFactory, serve: Serve
) -> None:
    config = make_cluster_config(uploads={"maxPending": 3})
    machines = [serve(config, machine_id=0), serve(config, machine_id=11)]
    async with machines[0].client() as one, machines[1].client() as two:
        answers = await asyncio.gather(*(create(c) for c in (one, two) * 4))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 3 + [429] * 5, [a.text for a in answers]


async def test_quota_max_files_and_max_bytes(make_config: ConfigFactory, serve: Serve) -> None:
    quotas = {"enabled": True, "users": [
        {"glob": "@nobody:*", "maxFiles": 1},
        {"glob": "@shared*", "maxFiles": 3, "maxBytes": 1000},
    ]}
    config = make_config(uploads={"quotas": quotas})
    node = serve(config)
    async with node.client() as client:
        assert (await upload(client, unique_bytes(400))).status_code == 200
        over_bytes = await upload(client, unique_bytes(700))
        body = assert_error(over_bytes, 403, "M_FORBIDDEN")
        assert "maxBytes 1000" in body["error"] and "@shared*" in body["error"]
        # Not declared up front: caught once the body is in.
        chunked = await client.post("/_matrix/media/v3/upload", content=slow_body(unique_bytes(700), 100, 0))
        assert_error(chunked, 403, "M_FORBIDDEN")
        assert (await upload(client, unique_bytes(300))).status_code == 200
        assert (await upload(client, unique_bytes(100))).status_code == 200
        over_files = await upload(client, unique_bytes(10))
        assert "maxFiles 3" in assert_error(over_files, 403, "M_FORBIDDEN")["error"]
        config_answer = (await client.get("/_matrix/client/v1/media/config")).json()
    assert config_answer["org.matrix.msc4034.storage.size"] == 1000
    assert config_answer["org.matrix.msc4034.storage.max_files"] == 3
    assert temp_files(config) == []
    assert len(stored_objects(config)) == 3


async def test_quota_max_pending(make_embedded_config: ConfigFactory, serve: Serve) -> None:
    quotas = {"enabled": True, "users": [{"glob": "@sharedsecret", "maxPending": 1}]}
    node = serve(make_embedded_config(uploads={"quotas": quotas, "maxPending": 10}))
    async with node.client() as client:
        assert (await create(client)).status_code == 200
        refused = await create(client)
    assert "maxPending 1" in assert_error(refused, 403, "M_FORBIDDEN")["error"]


async def test_quotas_off_or_unmatched_do_not_limit(
    make_embedded_config: ConfigFactory, serve: Serve
) -> None:
    unmatched = {"enabled": True, "users": [{"glob": "@alice:*", "maxFiles": 1}]}
    disabled = {"enabled": False, "users": [{"glob": "*", "maxFiles": 1}]}
    for quotas in (unmatched, disabled):
        node = serve(make_embedded_config(uploads={"quotas": quotas}))
        async with node.client() as client:
            for _ in range(3):
                assert (await upload(client, unique_bytes())).status_code == 200


async def test_allowed_and_denied_content_types(make_config: ConfigFactory, serve: Serve) -> None:
    types = {"allowedTypes": ["image/*", "text/plain"], "deniedTypes": ["image/svg+xml"]}
    config = make_config(uploads=types)
    node = serve(config)
    async with node.client() as client:
        assert (await upload(client, unique_bytes(), "Image/PNG")).status_code == 200
        assert (await upload(client, unique_bytes(), "text/plain; charset=utf-8")).status_code == 200
        svg = await upload(client, unique_bytes(), "image/svg+xml")
        assert "image/svg+xml" in assert_error(svg, 403, "M_FORBIDDEN")["error"]
        assert_error(await upload(client, unique_bytes(), "application/pdf"), 403, "M_FORBIDDEN")
        mxc = (await create(client)).json()["content_uri"]
        assert_error(await put(client, mxc, unique_bytes(), "text/html"), 403, "M_FORBIDDEN")
        assert (await put(client, mxc, unique_bytes(), "image/gif")).status_code == 200
    assert len(stored_objects(config)) == 3


async def test_refused_uploads_leave_no_rows(
    make_embedded_config: ConfigFactory, serve: Serve, runtime_for: object
) -> None:
    config = make_embedded_config(uploads={"maxBytes": 100, "deniedTypes": ["text/html"]})
    node = serve(config)
    async with node.client() as client:
        await upload(client, b"x" * 101)
        await upload(client, b"<html>", "text/html")
    runtime = await runtime_for(config)  # type: ignore[operator]
    assert await rows_of_user(runtime, USER) == 0
