"""Logouts and `/versions` through mmr, against a real Synapse, on two cluster processes sharing
PostgreSQL and Redis: a token logged out on one is refused at once by both, although both had
its whoami answer cached for hours.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.config import parse_config
from tests.conftest import RunningMmr, cluster_raw_config, new_bucket, serve_all
from tests.infra.seaweedfs import S3Server
from tests.infra.synapse import SynapseServer

CONFIG = "/_matrix/client/v1/media/config"


@pytest.fixture(scope="module")
def two_nodes(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_url: str, s3_server: S3Server,
    synapse_homeserver: SynapseServer,
) -> Iterator[tuple[RunningMmr, RunningMmr]]:
    workdir = tmp_path_factory.mktemp("logout")
    raw = cluster_raw_config(
        workdir, pg_url, redis_url, s3_server, new_bucket(s3_server),
        homeservers=[{"name": synapse_homeserver.server_name, "csApi": synapse_homeserver.client_url}],
        accessTokens={"maxCacheTimeSeconds": 43200},
    )
    config = parse_config(raw)
    with serve_all(config, machine_id=0) as first, serve_all(config, machine_id=7) as second:
        yield RunningMmr(first.url, config, workdir), RunningMmr(second.url, config, workdir)


def client(node: RunningMmr, token: str) -> httpx.AsyncClient:
    return node.client(token=token)


def new_user() -> str:
    return f"logout_{uuid.uuid4().hex[:8]}"


async def status(node: RunningMmr, token: str, path: str = CONFIG) -> int:
    async with client(node, token) as http:
        return (await http.get(path)).status_code


async def test_logout_is_passed_on_and_forgotten_by_every_process(
    two_nodes: tuple[RunningMmr, RunningMmr], synapse_homeserver: SynapseServer
) -> None:
    first, second = two_nodes
    user = synapse_homeserver.register_user(new_user())
    # Both processes have seen (and cached) the token.
    assert [await status(first, user.access_token), await status(second, user.access_token)] == [
        200, 200]
    async with client(first, user.access_token) as http:
        logged_out = await http.post("/_matrix/client/v3/logout")
    assert (logged_out.status_code, logged_out.json()) == (200, {})
    # Synapse forgot it, and so did mmr, on the other process too.
    with synapse_homeserver.client(user.access_token) as hs:
        assert hs.get("/_matrix/client/v3/account/whoami").status_code == 401
    assert await status(second, user.access_token) == 401
    assert await status(first, user.access_token) == 401


async def test_logout_all_forgets_every_token_of_the_user(
    two_nodes: tuple[RunningMmr, RunningMmr], synapse_homeserver: SynapseServer
) -> None:
    first, second = two_nodes
    localpart = new_user()
    laptop = synapse_homeserver.register_user(localpart)
    phone = synapse_homeserver.register_user(localpart)  # a second login: another token
    bystander = synapse_homeserver.register_user(new_user())
    for token in (laptop.access_token, phone.access_token, bystander.access_token):
        assert await status(second, token) == 200
    async with client(first, laptop.access_token) as http:
        done = await http.post("/_matrix/client/r0/logout/all")
    assert (done.status_code, done.json()) == (200, {})
    assert await status(second, phone.access_token) == 401
    assert await status(second, laptop.access_token) == 401
    assert await status(second, bystander.access_token) == 200  # only that user's tokens


async def test_logout_of_an_unknown_token_is_the_homeservers_401(
    two_nodes: tuple[RunningMmr, RunningMmr],
) -> None:
    async with client(two_nodes[0], "not-a-synapse-token") as http:
        got = await http.post("/_matrix/client/v3/logout")
    assert (got.status_code, got.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_versions_are_the_homeservers_plus_authenticated_media(
    two_nodes: tuple[RunningMmr, RunningMmr], synapse_homeserver: SynapseServer
) -> None:
    with synapse_homeserver.client() as hs:
        theirs = hs.get("/_matrix/client/versions").json()
    async with two_nodes[1].client(token=None) as anonymous:
        ours = (await anonymous.get("/_matrix/client/versions")).json()
    assert set(ours["versions"]) == set(theirs["versions"]) | {"v1.11"}
    assert ours["unstable_features"] == theirs["unstable_features"]


async def test_a_failing_homeserver_is_paused_after_backoff_at_failures(tmp_path: Path) -> None:
    """`homeservers[].backoffAt`: after that many failed token checks, mmr stops asking."""
    from tests.infra.http_server import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    raw = {"homeservers": [{"name": "localhost", "csApi": dead, "backoffAt": 2}],
           "database": {"sqlite": str(tmp_path / "mmr.db")},
           "datastores": [{"id": "f", "type": "file", "opts": {"path": str(tmp_path / "m")}}],
           "rateLimit": {"enabled": False}}
    config = parse_config(raw)
    with serve_all(config) as server:
        node = RunningMmr(server.url, config, tmp_path)
        answers = []
        for _ in range(3):
            async with node.client(token="some-token") as http:
                answers.append((await http.get(CONFIG)).json()["error"])
    assert "could not be reached" in answers[0] and "could not be reached" in answers[1]
    assert "failed too often recently" in answers[2]


async def test_logout_in_the_embedded_default(
    tmp_path: Path, synapse_homeserver: SynapseServer
) -> None:
    from tests.conftest import embedded_raw_config

    raw = embedded_raw_config(
        tmp_path, accessTokens={"maxCacheTimeSeconds": 43200},
        homeservers=[{"name": synapse_homeserver.server_name, "csApi": synapse_homeserver.client_url}])
    config = parse_config(raw)
    localpart = new_user()
    one, two = synapse_homeserver.register_user(localpart), synapse_homeserver.register_user(localpart)
    with serve_all(config) as server:
        node = RunningMmr(server.url, config, tmp_path)
        assert [await status(node, one.access_token), await status(node, two.access_token)] == [
            200, 200]
        async with client(node, one.access_token) as http:
            assert (await http.post("/_matrix/client/v3/logout")).status_code == 200
        assert [await status(node, one.access_token), await status(node, two.access_token)] == [
            401, 200]
        async with client(node, two.access_token) as http:
            assert (await http.post("/_matrix/client/v3/logout/all")).status_code == 200
        assert await status(node, two.access_token) == 401
