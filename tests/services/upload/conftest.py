"""Fixtures for the upload service: mmr servers built from config overrides, in both modes.

`make_config(**overrides)` builds the embedded default's config (SQLite, files, in-process
coordination) or a cluster node's (PostgreSQL, Redis, SeaweedFS S3), depending on `mode`;
`serve(config, machine_id)` runs it on a real uvicorn on loopback until the test ends. Two
`serve` calls on one cluster config are two machines of one cluster (own runtime, own Redis
connections, shared database, Redis and bucket).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from shared.config import MmrConfig, parse_config
from tests.conftest import (
    RunningMmr,
    cluster_raw_config,
    embedded_raw_config,
    new_bucket,
    serve_all,
)
from tests.infra.postgres import temporary_database
from tests.infra.seaweedfs import S3Server


class ConfigFactory(Protocol):
    def __call__(self, **overrides: Any) -> MmrConfig: ...


Serve = Callable[..., RunningMmr]


@pytest.fixture(params=["embedded", "cluster"])
def mode(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_embedded_config(tmp_path: Path) -> ConfigFactory:
    def make(**overrides: Any) -> MmrConfig:
        return parse_config(embedded_raw_config(tmp_path, **overrides))

    return make


@pytest.fixture
def fresh_database() -> Iterator[Callable[[], str]]:
    """A PostgreSQL database of this test's own (created on first use, dropped after the test).

    Quotas and pending limits count everything a user ever did, so sharing the session database
    would let one test's uploads count against the next one's limits.
    """
    with contextlib.ExitStack() as stack:
        urls: list[str] = []

        def get() -> str:
            if not urls:
                urls.append(stack.enter_context(temporary_database("mmr_upload")))
            return urls[0]

        yield get


@pytest.fixture
def make_cluster_config(
    tmp_path: Path, request: pytest.FixtureRequest, fresh_database: Callable[[], str]
) -> ConfigFactory:
    """Every config made in one test shares its database (one cluster); each gets a new bucket."""

    # Redis and S3 are looked up lazily so embedded-only tests never start them.
    def make(redis_url: str | None = None, **overrides: Any) -> MmrConfig:
        redis = redis_url or request.getfixturevalue("redis_url")
        s3: S3Server = request.getfixturevalue("s3_server")
        raw = cluster_raw_config(tmp_path, fresh_database(), redis, s3, new_bucket(s3), **overrides)
        return parse_config(raw)

    return make


@pytest.fixture
def make_config(
    mode: str, make_embedded_config: ConfigFactory, make_cluster_config: ConfigFactory
) -> ConfigFactory:
    return make_embedded_config if mode == "embedded" else make_cluster_config


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start servers for the test; all are stopped when it ends."""
    with contextlib.ExitStack() as stack:

        def start(config: MmrConfig, machine_id: int = 0) -> RunningMmr:
            server = stack.enter_context(serve_all(config, machine_id))
            return RunningMmr(server.url, config, tmp_path)

        yield start
