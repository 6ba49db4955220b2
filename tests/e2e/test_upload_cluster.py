"""Uploads across real processes: two `mmr serve upload` (MACHINE_ID 1 and 2) and one
`mmr serve download` (MACHINE_ID 3) on one PostgreSQL, Redis and SeaweedFS S3, started exactly
as an operator would start them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import yaml

from shared.config import MmrConfig, parse_config
from tests.conftest import SERVER_NAME, TEST_SECRET, cluster_raw_config, new_bucket
from tests.infra.postgres import temporary_database
from tests.infra.processes import MmrProcess, run_mmr, start_mmr
from tests.infra.seaweedfs import S3Server
from tests.services.upload.helpers import (
    CREATE,
    DOWNLOAD,
    UPLOAD,
    download_woken_by_put,
    media_path,
    race_two_puts,
    slow_body,
    stored_objects,
    unique_bytes,
)

MAX_PENDING = 3


@dataclass
class UploadCluster:
    config: MmrConfig
    uploads: list[MmrProcess]
    download: MmrProcess


def _client(process: MmrProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=process.url, timeout=60,
        headers={"Host": SERVER_NAME, "Authorization": f"Bearer {TEST_SECRET}"},
    )


@pytest.fixture(scope="module")
def upload_cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, s3_server: S3Server
) -> Iterator[UploadCluster]:
    workdir = tmp_path_factory.mktemp("upload-cluster")
    with temporary_database("mmr_upload_cluster") as database:
        raw = cluster_raw_config(workdir, database, redis_url, s3_server, new_bucket(s3_server),
                                 uploads={"maxPending": MAX_PENDING})
        config_path = workdir / "media-repo.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        migrated = run_mmr(["migrate", "--config", str(config_path)])
        assert migrated.returncode == 0, migrated.stderr
        processes = [
            start_mmr(f"{service}-{machine}", ["serve", service, "--config", str(config_path)],
                      workdir / "logs", env={"MACHINE_ID": str(machine)})
            for service, machine in (("upload", 1), ("upload", 2), ("download", 3))
        ]
        try:
            for process in processes:
                process.wait_healthy()
            yield UploadCluster(parse_config(raw), processes[:2], processes[2])
        finally:
            for process in processes:
                process.stop()


@pytest.fixture
async def clients(upload_cluster: UploadCluster) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Clients of upload machine 1, upload machine 2 and the download machine."""
    async with (
        _client(upload_cluster.uploads[0]) as one,
        _client(upload_cluster.uploads[1]) as two,
        _client(upload_cluster.download) as download,
    ):
        yield [one, two, download]


async def test_parallel_puts_to_one_id_on_two_upload_processes(
    upload_cluster: UploadCluster, clients: list[httpx.AsyncClient]
) -> None:
    one, two, download = clients
    objects_before = stored_objects(upload_cluster.config)
    race = await race_two_puts(one, two, 1024 * 1024)
    assert (await download.get(f"{DOWNLOAD}/{media_path(race.mxc)}")).content == race.winner
    assert len(stored_objects(upload_cluster.config) - objects_before) == 1


async def test_parallel_identical_uploads_store_one_object(
    upload_cluster: UploadCluster, clients: list[httpx.AsyncClient]
) -> None:
    one, two, download = clients
    objects_before = stored_objects(upload_cluster.config)
    data = unique_bytes(4 * 1024 * 1024)
    answers = await asyncio.gather(
        *(c.post(UPLOAD, content=slow_body(data, pause=0.001)) for c in (one, two, one, two))
    )
    assert [a.status_code for a in answers] == [200] * 4
    for answer in answers:
        got = await download.get(f"{DOWNLOAD}/{media_path(answer.json()['content_uri'])}")
        assert got.content == data
    assert len(stored_objects(upload_cluster.config) - objects_before) == 1


async def test_download_process_woken_by_put_on_an_upload_process(
    clients: list[httpx.AsyncClient],
) -> None:
    _, two, download = clients
    await download_woken_by_put(download, two, wait_limit=2.0)


async def test_pending_create_limit_across_upload_processes(
    clients: list[httpx.AsyncClient],
) -> None:
    one, two, _ = clients
    answers = await asyncio.gather(*(c.post(CREATE) for c in (one, two) * 4))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * MAX_PENDING + [429] * (8 - MAX_PENDING), [a.text for a in answers]
    assert all("retry-after" in a.headers for a in answers if a.status_code == 429)
