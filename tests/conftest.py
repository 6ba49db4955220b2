"""Session-wide real infrastructure: PostgreSQL, Redis, SeaweedFS S3, and mmr servers on loopback.

Every fixture here starts (or finds) the real thing and fails, never skips, when it cannot.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.config import MmrConfig, parse_config
from shared.runtime import Runtime, build_runtime
from tests.infra.http_server import ServerThread
from tests.infra.postgres import temporary_database
from tests.infra.redis_server import ensure_redis
from tests.infra.seaweedfs import S3Server, s3_server_from_env, start_seaweedfs
from tests.infra.synapse_fixtures import (  # noqa: F401  (session fixtures shared by every folder)
    synapse_a,
    synapse_b,
    synapse_factory,
    synapse_homeserver,
    test_tls,
)

TEST_SECRET = "test-shared-secret"
SERVER_NAME = "localhost"
# Machine IDs are leased per database: helpers that start several runtimes on the session's
# database give each its own, as a real cluster must.
_spare_machine_ids = itertools.cycle(range(800, 1024))


def spare_machine_id() -> int:
    return next(_spare_machine_ids)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with temporary_database() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    return ensure_redis()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server for the whole run: `MMR_TEST_S3_ENDPOINT` if set, else `weed mini`."""
    server = s3_server_from_env() or start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


def new_bucket(s3: S3Server) -> str:
    name = f"mmr-{uuid.uuid4().hex[:16]}"
    s3.client().create_bucket(Bucket=name)
    return name


def embedded_raw_config(data_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The embedded default's shape: SQLite, one file datastore, no Redis."""
    raw: dict[str, Any] = {
        "repo": {"tempPath": str(data_dir / "tmp")},
        "database": {"sqlite": str(data_dir / "mmr.db")},
        "homeservers": [{"name": SERVER_NAME, "csApi": ""}],
        "sharedSecretAuth": {"enabled": True, "token": TEST_SECRET},
        "datastores": [{"id": "local", "type": "file", "forKinds": ["all"],
                        "opts": {"path": str(data_dir / "media")}}],
        "rateLimit": {"enabled": False},
    }
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return raw


def cluster_raw_config(
    data_dir: Path, pg: str, redis: str, s3: S3Server, bucket: str, **overrides: Any
) -> dict[str, Any]:
    """A cluster's shape: PostgreSQL, Redis, an S3 datastore."""
    raw = embedded_raw_config(data_dir, **overrides)
    raw["database"] = {"postgres": pg}
    raw["redis"] = {"enabled": True, "url": redis}
    raw["datastores"] = [{"id": "s3", "type": "s3", "forKinds": ["all"], "opts": {
        "endpoint": s3.endpoint, "bucketName": bucket, "accessKeyId": s3.access_key,
        "accessSecret": s3.secret_key, "region": s3.region, "ssl": False, "pathStyle": True}}]
    return raw


@dataclass
class RunningMmr:
    """An mmr app served by real uvicorn on loopback (its runtime lives in the server's loop)."""

    url: str
    config: MmrConfig
    data_dir: Path

    def client(self, token: str | None = TEST_SECRET, **kwargs: Any) -> httpx.AsyncClient:
        """A client for this server, as a user of `SERVER_NAME` (the Host picks the homeserver)."""
        headers = {"Host": SERVER_NAME, **({"Authorization": f"Bearer {token}"} if token else {})}
        headers.update(kwargs.pop("headers", {}))
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60, **kwargs)


def serve_all(config: MmrConfig, machine_id: int = 0) -> ServerThread:
    """Every service's routes in one app, on a real uvicorn server in a thread."""
    from mmr.embedded import all_routers
    from shared.web.app import make_app

    return ServerThread(make_app("embedded", all_routers(), config=config, machine_id=machine_id))


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[RunningMmr]:
    """The embedded default (SQLite, file datastore, in-process coordination) on loopback."""
    config = parse_config(embedded_raw_config(tmp_path))
    with serve_all(config) as server:
        yield RunningMmr(server.url, config, tmp_path)


@pytest.fixture
def cluster_node(
    tmp_path: Path, pg_url: str, redis_url: str, s3_server: S3Server
) -> Iterator[RunningMmr]:
    """All routes on PostgreSQL, Redis and SeaweedFS S3 (one process of a cluster)."""
    config = parse_config(cluster_raw_config(tmp_path, pg_url, redis_url, s3_server,
                                             new_bucket(s3_server)))
    with serve_all(config) as server:
        yield RunningMmr(server.url, config, tmp_path)


@pytest.fixture
async def runtime_for() -> AsyncIterator[Any]:
    """Build extra runtimes in the test's loop (as another process would) to inspect state."""
    made: list[Runtime] = []

    async def build(config: MmrConfig, machine_id: int | None = None) -> Runtime:
        chosen = spare_machine_id() if machine_id is None else machine_id
        runtime = await build_runtime(config, "test", chosen)
        made.append(runtime)
        return runtime

    yield build
    for runtime in made:
        await runtime.close()
