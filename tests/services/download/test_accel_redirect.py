"""`downloads.accelRedirect`: the service authorises, a real nginx (deploy/nginx's template)
sends the bytes from its internal locations, for a file datastore and for S3 alike; the
headers are the service's, and no client reaches those locations directly."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from shared.config import parse_config
from shared.db.migrate import run_migrations
from shared.matrix.disposition import CONTENT_SECURITY_POLICY
from tests.conftest import (
    SERVER_NAME,
    TEST_SECRET,
    RunningMmr,
    cluster_raw_config,
    embedded_raw_config,
    new_bucket,
    serve_all,
    spare_machine_id,
)
from tests.infra.nginx import NginxProcess, render_mmr_conf, start_nginx
from tests.infra.seaweedfs import S3Server
from tests.services.download.helpers import DOWNLOAD, unique_bytes, upload

ACCEL = {"accelRedirect": {"enabled": True}}
# Bodies up to the download service's small-object size it sends itself, from memory.
LARGE = 300 * 1024


@contextlib.contextmanager
def behind_nginx(server: RunningMmr, workdir: Path,
                 file_datastores: dict[str, str] | None = None) -> Iterator[NginxProcess]:
    address = urlsplit(server.url).netloc
    conf = render_mmr_conf({s: address for s in ("upload", "download", "thumbnail", "preview",
                                                  "admin")}, file_datastores=file_datastores)
    nginx = start_nginx(conf, workdir)
    try:
        yield nginx
    finally:
        nginx.stop()


@pytest.fixture(scope="module")
def file_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningMmr, NginxProcess]]:
    data_dir = tmp_path_factory.mktemp("mmr-accel")
    config = parse_config(embedded_raw_config(data_dir, downloads=ACCEL))
    with serve_all(config) as thread:
        server = RunningMmr(thread.url, config, data_dir)
        with behind_nginx(server, tmp_path_factory.mktemp("nginx-accel"),
                          {"local": str((data_dir / "media").resolve())}) as nginx:
            yield server, nginx


@pytest.fixture(scope="module")
def s3_setup(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_url: str, s3_server: S3Server
) -> Iterator[tuple[RunningMmr, NginxProcess]]:
    data_dir = tmp_path_factory.mktemp("mmr-accel-s3")
    raw = cluster_raw_config(data_dir, pg_url, redis_url, s3_server, new_bucket(s3_server),
                             downloads=ACCEL)
    config = parse_config(raw)
    run_migrations(config.database.url)
    with serve_all(config, machine_id=spare_machine_id()) as thread:
        server = RunningMmr(thread.url, config, data_dir)
        with behind_nginx(server, tmp_path_factory.mktemp("nginx-accel-s3")) as nginx:
            yield server, nginx


@pytest.fixture(params=["file", "s3"])
def setup(request: pytest.FixtureRequest) -> tuple[RunningMmr, NginxProcess]:
    found: tuple[RunningMmr, NginxProcess] = request.getfixturevalue(f"{request.param}_setup")
    return found


def through(nginx: NginxProcess) -> httpx.AsyncClient:
    headers = {"Host": SERVER_NAME, "Authorization": f"Bearer {TEST_SECRET}"}
    return httpx.AsyncClient(base_url=nginx.url, headers=headers, timeout=60)


async def test_nginx_sends_the_bytes_with_the_services_headers(
    setup: tuple[RunningMmr, NginxProcess],
) -> None:
    server, nginx = setup
    data = unique_bytes(LARGE)
    async with server.client() as direct, through(nginx) as client:
        mxc = await upload(direct, data, "image/png", filename="cat.png")
        # The service itself answers with an empty body and where nginx finds the bytes.
        answer = await direct.get(f"{DOWNLOAD}/{mxc}")
        assert answer.status_code == 200 and answer.content == b""
        assert answer.headers["x-accel-redirect"].startswith("/_mmr_internal/")
        for path in (f"{DOWNLOAD}/{mxc}", f"{DOWNLOAD}/{mxc}/other.png"):
            response = await client.get(path)
            assert response.status_code == 200, response.text
            assert response.content == data
            headers = response.headers
            assert "x-accel-redirect" not in headers
            assert headers["content-type"] == "image/png"
            assert "filename" in headers["content-disposition"]
            assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
            assert headers["cache-control"] == answer.headers["cache-control"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["access-control-allow-origin"] == "*"
            assert headers["x-request-id"]


async def test_small_bodies_are_sent_by_the_service_itself(
    setup: tuple[RunningMmr, NginxProcess],
) -> None:
    server, nginx = setup
    data = unique_bytes(10 * 1024)
    async with server.client() as direct, through(nginx) as client:
        mxc = await upload(direct, data)
        for _ in range(2):  # the first read fills the process's small-object cache
            answer = await direct.get(f"{DOWNLOAD}/{mxc}")
            assert answer.status_code == 200 and answer.content == data
            assert "x-accel-redirect" not in answer.headers
        response = await client.get(f"{DOWNLOAD}/{mxc}")
        assert response.status_code == 200 and response.content == data


async def test_head_ranges_and_304_stay_the_services_answers(
    setup: tuple[RunningMmr, NginxProcess],
) -> None:
    server, nginx = setup
    data = unique_bytes(LARGE)
    async with server.client() as direct, through(nginx) as client:
        mxc = await upload(direct, data)
        head = await client.head(f"{DOWNLOAD}/{mxc}")
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
        ranged = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Range": "bytes=10-19"})
        assert ranged.status_code == 206 and ranged.content == data[10:20]
        assert ranged.headers["content-range"] == f"bytes 10-19/{len(data)}"
        etag = head.headers["etag"]
        unchanged = await client.get(f"{DOWNLOAD}/{mxc}", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        # A range the service ignores (a stale If-Range) is the whole body, from nginx too.
        stale = await client.get(f"{DOWNLOAD}/{mxc}",
                                 headers={"Range": "bytes=0-3", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == data


async def test_unauthorised_requests_get_no_bytes(setup: tuple[RunningMmr, NginxProcess]) -> None:
    server, nginx = setup
    async with server.client() as direct, through(nginx) as client:
        mxc = await upload(direct, unique_bytes())
        response = await client.get(f"{DOWNLOAD}/{mxc}", headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401
        assert response.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_the_internal_locations_are_not_reachable_from_outside(
    setup: tuple[RunningMmr, NginxProcess],
) -> None:
    server, nginx = setup
    data = unique_bytes(LARGE)
    async with server.client() as direct, through(nginx) as client:
        mxc = await upload(direct, data)
        target = (await direct.get(f"{DOWNLOAD}/{mxc}")).headers["x-accel-redirect"]
        for path in (target, "/_mmr_internal/file/local/", "/_mmr_internal/s3/http/127.0.0.1/x"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert data not in response.content
