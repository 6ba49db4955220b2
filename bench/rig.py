"""Starting mmr the way benchmarks measure it: the embedded default, or a cluster of one service.

    with mmr_embedded(work, {"urlPreviews": {...}}) as process: ...
    with mmr_cluster(work, stack, "preview", {...}) as processes: ...   # machines 1..count

Both run `mmr serve` as real subprocesses (tests.infra.processes) with shared-secret auth
(`SECRET`) for homeserver `localhost`, rate limits off and the given config sections on top. The
cluster runs on a fresh PostgreSQL database, Redis and a SeaweedFS S3 bucket, with an admin
process as machine 0 (it migrates). Import after putting the repository root on sys.path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.infra.postgres import temporary_database
from tests.infra.processes import MmrProcess, start_mmr
from tests.infra.redis_server import ensure_redis
from tests.infra.seaweedfs import start_seaweedfs

SECRET = "bench-shared-secret"
HOST = "localhost"


def base_config(data: Path, sections: dict[str, Any]) -> dict[str, Any]:
    return {
        "repo": {"tempPath": str(data / "tmp"), "logLevel": "warning"},
        "homeservers": [{"name": HOST, "csApi": ""}],
        "sharedSecretAuth": {"enabled": True, "token": SECRET},
        "rateLimit": {"enabled": False},
        **sections,
    }


def write_config(path: Path, config: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def started(process: MmrProcess) -> MmrProcess:
    process.wait_healthy()
    return process


@contextmanager
def mmr_embedded(work: Path, sections: dict[str, Any]) -> Iterator[MmrProcess]:
    """`mmr serve --config` (every service, SQLite, a file datastore, in-process coordination)."""
    data = work / "embedded"
    data.mkdir()
    config = base_config(data, sections) | {
        "database": {"sqlite": str(data / "mmr.db")},
        "datastores": [{"id": "local", "type": "file", "forKinds": ["all"],
                        "opts": {"path": str(data / "media")}}],
    }
    path = write_config(data / "config.yaml", config)
    process = started(start_mmr("embedded", ["serve", "--config", path], data / "logs"))
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def mmr_cluster(
    work: Path, stack: ExitStack, service: str, sections: dict[str, Any], count: int = 2
) -> Iterator[list[MmrProcess]]:
    """`count` processes of `service` (machines 1..count) plus admin, on PostgreSQL/Redis/S3."""
    data = work / "cluster"
    data.mkdir()
    pg = stack.enter_context(temporary_database(f"mmr_bench_{service}"))
    s3 = start_seaweedfs(data / "seaweedfs")
    stack.callback(s3.stop)
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=bucket)
    config = base_config(data, sections) | {
        "database": {"postgres": pg},
        "redis": {"enabled": True, "url": ensure_redis()},
        "datastores": [{"id": "s3", "type": "s3", "forKinds": ["all"], "opts": {
            "endpoint": s3.endpoint, "bucketName": bucket, "accessKeyId": s3.access_key,
            "accessSecret": s3.secret_key, "region": s3.region, "ssl": False, "pathStyle": True}}],
    }
    path = write_config(data / "config.yaml", config)
    admin = started(start_mmr("admin", ["serve", "admin", "--config", path], data / "logs",
                              env={"MACHINE_ID": "0"}))
    processes = [start_mmr(f"{service}{i}", ["serve", service, "--config", path], data / "logs",
                           env={"MACHINE_ID": str(i)}) for i in range(1, count + 1)]
    try:
        for process in processes:
            started(process)
        yield processes
    finally:
        for process in [*processes, admin]:
            process.stop()
