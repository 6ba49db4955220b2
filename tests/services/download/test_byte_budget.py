"""The per-IP download byte budget (`rateLimit.buckets.downloads`, matrix-media-repo's leaky
bucket): every byte a client downloads (a range: its length; a thumbnail: its size) fills the
client IP's bucket, which drains at `drainBytesPerMinute`; a download that would take it past
`capacityBytes + overflowLimitBytes` is 429 `M_LIMIT_EXCEEDED` with Retry-After, before any byte
is sent. One bucket per IP for the whole cluster (Redis), failing open when Redis is unreachable.

Every test is its own client IP (X-Forwarded-For from the trusted loopback proxy), so tests and
test runs sharing one Redis never fill each other's buckets.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import parse_config
from shared.db.migrate import run_migrations
from tests.conftest import RunningMmr, cluster_raw_config, new_bucket, serve_all, spare_machine_id
from tests.infra.seaweedfs import S3Server
from tests.services.download.budget import (
    BUDGET,
    CHUNK,
    FILE,
    LIMIT,
    as_new_client,
    assert_limited,
    random_ip,
)
from tests.services.download.conftest import ServeFactory
from tests.services.download.helpers import DOWNLOAD, LEGACY_DOWNLOAD, unique_bytes, upload
from tests.services.thumbnail.helpers import LEGACY, thumbnail, unique_jpeg
from tests.services.upload.helpers import DEAD_REDIS


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def node(request: pytest.FixtureRequest) -> RunningMmr:
    factory: ServeFactory = request.getfixturevalue(f"serve_{request.param}")
    return factory(**BUDGET)


@pytest.fixture(scope="module")
async def media(node: RunningMmr) -> tuple[str, bytes]:
    data = unique_bytes(FILE)
    async with node.client() as client:
        return await upload(client, data, "video/mp4"), data


async def test_downloads_fill_the_bucket_then_429_with_retry_after(
    node: RunningMmr, media: tuple[str, bytes]
) -> None:
    mxc, data = media
    async with as_new_client(node) as client:
        first = await client.get(f"{DOWNLOAD}/{mxc}")
        second = await client.get(f"{LEGACY_DOWNLOAD}/{mxc}")  # the legacy routes share it
        third = await client.get(f"{DOWNLOAD}/{mxc}")
    async with as_new_client(node) as other:
        elsewhere = await other.get(f"{DOWNLOAD}/{mxc}")
    assert (first.status_code, first.content) == (200, data)
    assert (second.status_code, second.content) == (200, data)
    assert_limited(third, over_bytes=3 * FILE - LIMIT)
    assert (elsewhere.status_code, elsewhere.content) == (200, data)  # one bucket per IP


async def test_a_range_costs_its_length_and_open_ended_ones_one_chunk(
    node: RunningMmr, media: tuple[str, bytes]
) -> None:
    mxc, data = media
    async with as_new_client(node) as client:
        for _ in range(2):
            assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200  # 120 000
        closed = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": "bytes=0-19999"})
        open_ended = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": "bytes=100-"})
        one_more = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": "bytes=0-999"})
    assert (closed.status_code, closed.content) == (206, data[:20_000])  # 140 000
    assert (open_ended.status_code, open_ended.content) == (206, data[100:100 + CHUNK])  # 150 000
    assert_limited(one_more, over_bytes=1000)


async def test_head_and_not_modified_send_no_bytes_and_cost_nothing(
    node: RunningMmr, media: tuple[str, bytes]
) -> None:
    mxc, _ = media
    async with as_new_client(node) as client:
        etag = (await client.head(f"{DOWNLOAD}/{mxc}")).headers["etag"]
        for _ in range(5):
            assert (await client.head(f"{DOWNLOAD}/{mxc}")).status_code == 200
            cached = await client.get(f"{DOWNLOAD}/{mxc}", headers={"If-None-Match": etag})
            assert cached.status_code == 304
        statuses = [(await client.get(f"{DOWNLOAD}/{mxc}")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_thumbnails_are_charged_their_size(
    node: RunningMmr, media: tuple[str, bytes]
) -> None:
    mxc, _ = media
    async with node.client() as client:
        image = (await client.post("/_matrix/media/v3/upload", content=unique_jpeg(),
                                   headers={"Content-Type": "image/jpeg"})).json()["content_uri"]
    image_id = image.rsplit("/", 1)[1]
    async with as_new_client(node) as client:
        made = await thumbnail(client, image_id, 96, 96)
        assert made.status_code == 200, made.text
        size = len(made.content)
        for _ in range(2):
            assert (await client.get(f"{DOWNLOAD}/{mxc}")).status_code == 200
        # Fill the bucket to half a thumbnail below the limit.
        room = LIMIT - 2 * FILE - size - size // 2
        filler = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": f"bytes=0-{room - 1}"})
        assert filler.status_code == 206
        client_route = await thumbnail(client, image_id, 96, 96)
        legacy_route = await thumbnail(client, image_id, 96, 96, path=LEGACY.format(version="v3"))
    assert_limited(client_route, over_bytes=size - size // 2)
    assert_limited(legacy_route, over_bytes=size - size // 2)


async def test_nothing_is_charged_when_rate_limiting_is_off(
    serve_embedded: ServeFactory,
) -> None:
    node = serve_embedded(**{**BUDGET, "rateLimit": {**BUDGET["rateLimit"], "enabled": False}})
    data = unique_bytes(FILE)
    async with node.client() as client:
        mxc = await upload(client, data)
    async with as_new_client(node) as client:
        statuses = [(await client.get(f"{DOWNLOAD}/{mxc}")).status_code for _ in range(4)]
    assert statuses == [200] * 4


@pytest.fixture
def cluster_of(
    tmp_path: Path, pg_url: str, s3_server: S3Server
) -> Iterator[Any]:
    """`cluster_of(redis_url, machines)`: that many processes sharing one cluster config."""
    with contextlib.ExitStack() as stack:

        def start(redis_url: str, machines: int) -> list[RunningMmr]:
            raw = cluster_raw_config(tmp_path, pg_url, redis_url, s3_server,
                                     new_bucket(s3_server), **BUDGET)
            config = parse_config(raw)
            run_migrations(config.database.url)
            servers = [stack.enter_context(serve_all(config, machine_id=spare_machine_id()))
                       for _ in range(machines)]
            return [RunningMmr(server.url, config, tmp_path) for server in servers]

        yield start


async def test_one_bucket_per_ip_across_processes(cluster_of: Any, redis_url: str) -> None:
    first, second = cluster_of(redis_url, machines=2)
    data = unique_bytes(FILE)
    async with first.client() as client:
        mxc = await upload(client, data)
    ip = random_ip()
    answers = []
    for turn in range(4):
        async with as_new_client((first, second)[turn % 2], ip) as client:
            answers.append(await client.get(f"{DOWNLOAD}/{mxc}"))
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert_limited(answers[2], over_bytes=3 * FILE - LIMIT)  # on the first process
    assert_limited(answers[3], over_bytes=3 * FILE - LIMIT)  # and on the second


async def test_an_unreachable_redis_lets_downloads_through(
    cluster_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (node,) = cluster_of(DEAD_REDIS, machines=1)
    caplog.set_level(logging.WARNING)
    data = unique_bytes(FILE)
    async with node.client() as client:
        mxc = await upload(client, data)
    async with as_new_client(node) as client:
        answers = [await client.get(f"{DOWNLOAD}/{mxc}") for _ in range(4)]
    assert [(a.status_code, a.content == data) for a in answers] == [(200, True)] * 4
    assert "rate limiter failing open" in caplog.text
