"""Clusters of real `mmr serve` processes on PostgreSQL, Redis and SeaweedFS S3, each test its own
database (so its own cluster: leases are per database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import SERVER_NAME, TEST_SECRET, cluster_raw_config, new_bucket
from tests.infra.postgres import temporary_database
from tests.infra.processes import MmrProcess, run_mmr, start_mmr
from tests.infra.seaweedfs import S3Server

WriteConfig = Callable[..., Path]
Start = Callable[..., MmrProcess]


@pytest.fixture
def database() -> Iterator[str]:
    with temporary_database("mmr_cluster") as url:
        yield url


@pytest.fixture
def write_config(tmp_path: Path, database: str, redis_url: str, s3_server: S3Server) -> WriteConfig:
    """`write_config(redis=URL, name="media-repo.yaml", **sections)`: a migrated cluster config."""
    bucket = new_bucket(s3_server)
    migrated: list[bool] = []

    def write(redis: str | None = None, name: str = "media-repo.yaml", **sections: Any) -> Path:
        raw = cluster_raw_config(tmp_path, database, redis or redis_url, s3_server, bucket)
        raw["cluster"] = {"leaseSeconds": 3}
        for section, values in sections.items():
            raw[section] = {**raw.get(section, {}), **values}
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        if not migrated:
            result = run_mmr(["migrate", "--config", str(path)])
            assert result.returncode == 0, result.stderr
            migrated.append(True)
        return path

    return write


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """`start(name, service, config, machine_id="auto", *extra_args)`; all stopped at the end."""
    started: list[MmrProcess] = []

    def run(name: str, service: str, config: Path, machine_id: str | None = "auto",
            *extra: str, wait: bool = True) -> MmrProcess:
        env = {"MACHINE_ID": machine_id}
        process = start_mmr(name, ["serve", service, "--config", str(config), *extra],
                            tmp_path / "logs", env=env)
        started.append(process)
        if wait:
            process.wait_healthy()
        return process

    yield run
    for process in started:
        process.stop()


def client(process: MmrProcess, token: str | None = TEST_SECRET, timeout: float = 30) -> httpx.Client:
    headers = {"Host": SERVER_NAME, **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.Client(base_url=process.url, headers=headers, timeout=timeout)


def upload(process: MmrProcess, data: bytes, timeout: float = 30) -> httpx.Response:
    with client(process, timeout=timeout) as http:
        return http.post("/_matrix/media/v3/upload", content=data,
                         headers={"Content-Type": "application/octet-stream"})


def machine_id(process: MmrProcess) -> int:
    return int(httpx.get(process.url + "/healthz", timeout=10).json()["machine_id"])


def cluster_view(process: MmrProcess, timeout: float = 10) -> dict[str, Any]:
    with client(process, timeout=timeout) as http:
        answer = http.get("/_matrix/media/unstable/admin/cluster")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result
