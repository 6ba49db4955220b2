"""Fixtures for the download service: mmr servers in both modes, shared per module.

Servers are module-scoped (a test changes nothing that another test of its module could see:
every test uploads its own unique bytes), so a file of thirty header checks starts one server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import parse_config
from shared.db.migrate import run_migrations
from tests.conftest import (
    RunningMmr,
    cluster_raw_config,
    embedded_raw_config,
    new_bucket,
    serve_all,
    spare_machine_id,
)
from tests.infra.seaweedfs import S3Server

ServeFactory = Callable[..., RunningMmr]


@pytest.fixture(scope="module")
def serve_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeFactory]:
    """`serve_embedded(**config overrides)`: the embedded default on loopback, until module end."""
    with contextlib.ExitStack() as stack:

        def serve(**overrides: Any) -> RunningMmr:
            data_dir = tmp_path_factory.mktemp("mmr")
            config = parse_config(embedded_raw_config(data_dir, **overrides))
            server = stack.enter_context(serve_all(config))
            return RunningMmr(server.url, config, data_dir)

        yield serve


def public_bucket(s3: S3Server) -> str:
    """A new bucket anyone may read (what an S3 `publicBaseUrl` points at)."""
    bucket = new_bucket(s3)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
        "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}
    s3.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return bucket


@pytest.fixture(scope="module")
def serve_cluster(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_url: str, s3_server: S3Server
) -> Iterator[ServeFactory]:
    """`serve_cluster(public=False, machine_id=None, **overrides)`: one cluster node on PostgreSQL,
    Redis and its own S3 bucket (public, behind `publicBaseUrl`, when `public`)."""
    with contextlib.ExitStack() as stack:

        def serve(public: bool = False, machine_id: int | None = None, **overrides: Any) -> RunningMmr:
            data_dir = tmp_path_factory.mktemp("mmr")
            bucket = public_bucket(s3_server) if public else new_bucket(s3_server)
            raw = cluster_raw_config(data_dir, pg_url, redis_url, s3_server, bucket, **overrides)
            if public:
                raw["datastores"][0]["opts"]["publicBaseUrl"] = f"{s3_server.endpoint}/{bucket}"
            config = parse_config(raw)
            # Machine 0 would migrate at start; other machines only wait for the schema.
            run_migrations(config.database.url)
            server = stack.enter_context(serve_all(
                config, machine_id=spare_machine_id() if machine_id is None else machine_id))
            return RunningMmr(server.url, config, data_dir)

        yield serve


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def mmr(request: pytest.FixtureRequest) -> RunningMmr:
    """The same tests against the embedded default and a cluster node."""
    factory: ServeFactory = request.getfixturevalue(f"serve_{request.param}")
    return factory()


def temp_files(data_dir: Path) -> list[Path]:
    """Files left in a server's temp folder (spooled uploads or downloads that were not cleaned)."""
    tmp = data_dir / "tmp"
    return [path for path in tmp.rglob("*") if path.is_file()] if tmp.exists() else []
