"""The admin API as operators meet it: the embedded default, and a cluster (PostgreSQL, Redis,
SeaweedFS) with the admin service as machine 0 beside a media process (upload, download and
thumbnail, machine 1), both checking tokens against a real Synapse.

Callers: the shared secret and `operator` (listed in `admins`) are global admins, `hsadmin` is
an admin of the Synapse (a local admin), `alice` and `bob` are plain users.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.config import MmrConfig, parse_config
from shared.web.app import make_app
from tests.conftest import (
    SERVER_NAME,
    TEST_SECRET,
    cluster_raw_config,
    embedded_raw_config,
    new_bucket,
)
from tests.infra.http_server import ServerThread
from tests.infra.postgres import temporary_database
from tests.infra.seaweedfs import S3Server
from tests.infra.synapse import RegisteredUser, SynapseServer


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with temporary_database("mmr_admin") as url:
        yield url


@pytest.fixture(scope="session")
def admin_bucket(s3_server: S3Server) -> str:
    """One bucket for every admin test: each has its own database, objects are content
    addressed, and a bucket per test would pile up the session's SeaweedFS volumes."""
    return new_bucket(s3_server)


@dataclass(frozen=True)
class Callers:
    operator: RegisteredUser  # in `admins`
    hsadmin: RegisteredUser  # admin of the homeserver
    alice: RegisteredUser
    bob: RegisteredUser


@pytest.fixture(scope="session")
def callers(synapse_homeserver: SynapseServer) -> Callers:
    return Callers(
        operator=synapse_homeserver.register_user("mmr_operator"),
        hsadmin=synapse_homeserver.register_user("mmr_hsadmin", admin=True),
        alice=synapse_homeserver.register_user("mmr_alice"),
        bob=synapse_homeserver.register_user("mmr_bob"),
    )


@dataclass
class Deployment:
    kind: str
    admin_url: str  # where the admin API answers
    media_url: str  # where uploads, downloads and thumbnails go
    config: MmrConfig
    data_dir: Path

    def client(self, token: str | None = TEST_SECRET, media: bool = False, **kw: Any) -> httpx.AsyncClient:
        headers = {"Host": SERVER_NAME, **({"Authorization": f"Bearer {token}"} if token else {})}
        return httpx.AsyncClient(base_url=self.media_url if media else self.admin_url,
                                 headers=headers, timeout=60, **kw)

    async def upload(self, token: str, data: bytes, content_type: str = "application/octet-stream",
                     filename: str | None = None) -> tuple[str, str]:
        """(server, media_id) of new media uploaded as the token's user."""
        async with self.client(token, media=True) as http:
            response = await http.post("/_matrix/media/v3/upload", content=data,
                                       params={"filename": filename} if filename else None,
                                       headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        server, _, media_id = response.json()["content_uri"][len("mxc://"):].partition("/")
        return server, media_id


ADMIN_PREFIX = "/_matrix/media/unstable/admin"
T2BOT_PREFIX = "/_matrix/media/unstable/io.t2bot.media/admin"


def admin_raw(synapse: SynapseServer, callers: Callers, api_kind: str = "synapse",
              **overrides: Any) -> dict[str, Any]:
    return {
        "homeservers": [{"name": SERVER_NAME, "csApi": synapse.client_url, "adminApiKind": api_kind}],
        "admins": [callers.operator.user_id],
        **overrides,
    }


def serve_embedded(config: MmrConfig) -> ServerThread:
    """The embedded default as `mmr serve` runs it: every router and every start hook."""
    from mmr.embedded import all_routers, all_start_hooks

    return ServerThread(make_app("embedded", all_routers(), config=config, machine_id=0,
                                 start_hooks=all_start_hooks()))


def serve_cluster(config: MmrConfig) -> tuple[ServerThread, ServerThread]:
    """The admin service (machine 0) and a media process (machine 1) on one cluster config."""
    from mmr.services import service_module

    admin = ServerThread(service_module("admin").create_app(config=config, machine_id=0)).start()
    routers = [r for name in ("upload", "download", "thumbnail")
               for r in service_module(name).ROUTERS]
    hooks = [h for name in ("upload", "download", "thumbnail")
             for h in getattr(service_module(name), "START_HOOKS", [])]
    media = ServerThread(make_app("media", routers, config=config, machine_id=1, start_hooks=hooks))
    return admin, media.start()


def build_config(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
                 raw_overrides: dict[str, Any]) -> MmrConfig:
    if kind == "embedded":
        raw = embedded_raw_config(tmp_path)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        raw = cluster_raw_config(tmp_path, request.getfixturevalue("fresh_pg"),
                                 request.getfixturevalue("redis_url"), s3,
                                 request.getfixturevalue("admin_bucket"))
    raw.update(raw_overrides)
    return parse_config(raw)


@pytest.fixture
def deploy(request: pytest.FixtureRequest, tmp_path: Path, synapse_homeserver: SynapseServer,
           callers: Callers) -> Iterator[Any]:
    """`deploy(kind, **config_sections)` starts a deployment; stopped at the test's end."""
    started: list[ServerThread] = []

    def start(kind: str, api_kind: str = "synapse", **overrides: Any) -> Deployment:
        config = build_config(kind, request, tmp_path, admin_raw(synapse_homeserver, callers,
                                                                   api_kind, **overrides))
        if kind == "embedded":
            server = serve_embedded(config).start()
            started.append(server)
            return Deployment(kind, server.url, server.url, config, tmp_path)
        admin, media = serve_cluster(config)
        started.extend([media, admin])
        return Deployment(kind, admin.url, media.url, config, tmp_path)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=["embedded", "cluster"])
def deployment(request: pytest.FixtureRequest, deploy: Any) -> Deployment:
    result: Deployment = deploy(request.param)
    return result
