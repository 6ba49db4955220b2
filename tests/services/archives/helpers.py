"""Servers with the task runner (machine 0, every service), users, and task waiting for the
archive and datastore tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.config import MmrConfig, parse_config
from tests.conftest import RunningMmr, cluster_raw_config, embedded_raw_config, new_bucket
from tests.infra.http_server import ServerThread
from tests.infra.postgres import temporary_database
from tests.infra.seaweedfs import S3Server

ADMIN = "/_matrix/media/unstable/admin"
USER_TOKEN = "as-secret"
USER = "@bridgebot:localhost"
APPSERVICE = {"id": "bridge", "asToken": USER_TOKEN, "senderUserId": USER,
              "userNamespaces": [{"regex": "@bridge_.*:localhost"}]}


def serve_with_tasks(config: MmrConfig, machine_id: int = 0) -> ServerThread:
    """Every service's routes and start hooks (the task runner among them), as `mmr serve`."""
    from mmr.embedded import all_routers, all_start_hooks
    from shared.web.app import make_app

    return ServerThread(make_app("embedded", all_routers(), config=config, machine_id=machine_id,
                                 start_hooks=all_start_hooks()))


class Nodes:
    """Builds configs of one mode (a new database per config in a cluster) and serves them."""

    def __init__(self, mode: str, tmp_path: Path, request: pytest.FixtureRequest,
                 stack: contextlib.ExitStack) -> None:
        self.mode, self.tmp_path, self.request, self.stack = mode, tmp_path, request, stack
        self.count = 0

    def config(self, **overrides: Any) -> MmrConfig:
        self.count += 1
        folder = self.tmp_path / f"node{self.count}"
        folder.mkdir()
        overrides.setdefault("accessTokens", {"useLocalAppserviceConfig": True, "appservices": [APPSERVICE]})
        if self.mode == "embedded":
            return parse_config(embedded_raw_config(folder, **overrides))
        s3: S3Server = self.request.getfixturevalue("s3_server")
        database = self.stack.enter_context(temporary_database("mmr_archives"))
        raw = cluster_raw_config(folder, database, self.request.getfixturevalue("redis_url"), s3,
                                 new_bucket(s3), **overrides)
        return parse_config(raw)

    def serve(self, config: MmrConfig) -> RunningMmr:
        server = self.stack.enter_context(serve_with_tasks(config))
        return RunningMmr(server.url, config, self.tmp_path)


@pytest.fixture(params=["embedded", "cluster"])
def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Nodes]:
    with contextlib.ExitStack() as stack:
        yield Nodes(request.param, tmp_path, request, stack)


async def upload(node: RunningMmr, data: bytes, content_type: str, filename: str,
                 user_id: str | None = None) -> str:
    """Upload as the appservice's user (or one in its namespace); the media ID."""
    params = {"filename": filename, **({"user_id": user_id} if user_id else {})}
    async with node.client(token=USER_TOKEN) as client:
        answer = await client.post("/_matrix/media/v3/upload", content=data, params=params,
                                   headers={"Content-Type": content_type})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["content_uri"]).rsplit("/", 1)[1]


async def wait_task(client: httpx.AsyncClient, task_id: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get(f"{ADMIN}/tasks/{task_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["is_finished"]:
            return body
        assert time.monotonic() < deadline, f"task {task_id} did not finish: {body}"
        await asyncio.sleep(0.05)


