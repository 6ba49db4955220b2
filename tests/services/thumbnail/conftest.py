"""Thumbnail servers on real uvicorn: the embedded default (every service in one process, with
the thumbnail start hook) and cluster nodes (PostgreSQL, Redis, SeaweedFS S3) where machine 0
serves uploads and separate thumbnail processes, each its own machine, make thumbnails."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mmr.embedded import all_routers
from services.thumbnail.app import START_HOOKS
from services.thumbnail.app import create_app as create_thumbnail_app
from services.thumbnail.context import ThumbnailContext
from services.thumbnail.worker.pool import WorkerPool
from shared.config import MmrConfig, parse_config
from shared.runtime import Runtime
from shared.web.app import make_app
from tests.conftest import (
    SERVER_NAME,
    TEST_SECRET,
    cluster_raw_config,
    embedded_raw_config,
    new_bucket,
)
from tests.infra.http_server import ServerThread
from tests.infra.seaweedfs import S3Server


@dataclass
class Node:
    """One mmr process: its URL and its app (whose runtime lives in the server's thread)."""

    url: str
    app: FastAPI
    config: MmrConfig

    def client(self, token: str | None = TEST_SECRET, **kwargs: Any) -> httpx.AsyncClient:
        """A client of `SERVER_NAME`'s users (the Host picks the homeserver)."""
        headers = {"Host": SERVER_NAME, **({"Authorization": f"Bearer {token}"} if token else {})}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=60, **kwargs)

    @property
    def pool(self) -> WorkerPool:
        runtime = self.app.state.runtime
        assert isinstance(runtime, Runtime)
        return runtime.part(ThumbnailContext).pool


def embedded_app(config: MmrConfig, machine_id: int = 0) -> FastAPI:
    """What `mmr serve` runs by default: every route in one app, thumbnail hook included."""
    return make_app("embedded", all_routers(), config=config, machine_id=machine_id,
                    start_hooks=START_HOOKS)


def uploads_app(config: MmrConfig) -> FastAPI:
    """Machine 0 of a cluster: migrates the schema, takes uploads; makes no thumbnails."""
    return make_app("embedded", all_routers(), config=config, machine_id=0)


Serve = Callable[[FastAPI, MmrConfig], Node]


def _serving(stack: contextlib.ExitStack) -> Serve:
    def start(app: FastAPI, config: MmrConfig) -> Node:
        server = stack.enter_context(ServerThread(app))
        return Node(server.url, app, config)

    return start


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start apps for one test; all stop when it ends."""
    with contextlib.ExitStack() as stack:
        yield _serving(stack)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One embedded default for a module's tests (each test uploads its own media)."""
    config = parse_config(embedded_raw_config(tmp_path_factory.mktemp("thumbs")))
    with contextlib.ExitStack() as stack:
        yield _serving(stack)(embedded_app(config), config)


@pytest.fixture
def embedded_config(tmp_path: Path) -> Callable[..., MmrConfig]:
    def make(**overrides: Any) -> MmrConfig:
        return parse_config(embedded_raw_config(tmp_path, **overrides))

    return make


@pytest.fixture
def cluster_config(
    tmp_path: Path, pg_url: str, redis_url: str, s3_server: S3Server
) -> Callable[..., MmrConfig]:
    """One cluster per test: the session database, the session Redis, a new bucket."""
    bucket = new_bucket(s3_server)

    def make(**overrides: Any) -> MmrConfig:
        return parse_config(
            cluster_raw_config(tmp_path, pg_url, redis_url, s3_server, bucket, **overrides)
        )

    return make


@pytest.fixture
def cluster(serve: Serve, cluster_config: Callable[..., MmrConfig]) -> Callable[..., list[Node]]:
    """`cluster(n, **overrides)`: machine 0 (uploads), then `n` thumbnail processes 1..n."""

    def start(thumbnail_processes: int, **overrides: Any) -> list[Node]:
        config = cluster_config(**overrides)
        nodes = [serve(uploads_app(config), config)]
        for machine_id in range(1, thumbnail_processes + 1):
            nodes.append(serve(create_thumbnail_app(config, machine_id=machine_id), config))
        return nodes

    return start
