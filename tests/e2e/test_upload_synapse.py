"""Uploads with real users of a real Synapse (PyPI `matrix-synapse`, SQLite, loopback): tokens
checked through its whoami, guests, an appservice acting as its users, per-user quotas and rate
limits, and two homeservers in one deployment, each checking its own tokens.

mmr runs as a cluster node (PostgreSQL, Redis, SeaweedFS S3).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.config import MmrConfig, parse_config
from shared.db.repositories.media import get_media
from tests.conftest import RunningMmr, cluster_raw_config, new_bucket, serve_all
from tests.infra.postgres import temporary_database
from tests.infra.seaweedfs import S3Server
from tests.infra.synapse import RegisteredUser, SynapseServer
from tests.infra.synapse_fixtures import BRIDGE_APPSERVICE, SynapseFactory
from tests.services.upload.helpers import (
    CREATE,
    DEAD_REDIS,
    DOWNLOAD,
    UPLOAD,
    assert_error,
    media_path,
    unique_bytes,
)

RATE_BURST = 5


def _config(
    workdir: Path, database: str, redis: str, s3: S3Server, homeservers: list[dict[str, Any]]
) -> MmrConfig:
    raw = cluster_raw_config(
        workdir, database, redis, s3, new_bucket(s3), homeservers=homeservers,
        uploads={
            "ratePerSecond": 0.01, "rateBurst": RATE_BURST,
            "quotas": {"enabled": True, "users": [{"glob": "@quota_*:localhost", "maxFiles": 1}]},
        },
    )
    return parse_config(raw)


@pytest.fixture(scope="module")
def mmr(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, s3_server: S3Server,
    synapse_homeserver: SynapseServer,
) -> Iterator[RunningMmr]:
    workdir = tmp_path_factory.mktemp("upload-synapse")
    homeservers = [{"name": synapse_homeserver.server_name, "csApi": synapse_homeserver.client_url}]
    with temporary_database("mmr_upload_synapse") as database:
        config = _config(workdir, database, redis_url, s3_server, homeservers)
        with serve_all(config) as server:
            yield RunningMmr(server.url, config, workdir)


def user(synapse: SynapseServer, prefix: str) -> RegisteredUser:
    """A new user (unique per run: per-user rate limits live in the shared Redis)."""
    return synapse.register_user(f"{prefix}_{uuid.uuid4().hex[:8]}")


def as_user(node: RunningMmr, token: str, host: str = "localhost") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=node.url, timeout=30, headers={"Host": host, "Authorization": f"Bearer {token}"}
    )


async def owner_of(node: RunningMmr, runtime_for: object, mxc: str) -> str | None:
    runtime = await runtime_for(node.config)  # type: ignore[operator]
    origin, media_id = media_path(mxc).split("/")
    async with runtime.sessions() as session:
        record = await get_media(session, origin, media_id)
    assert record is not None
    return record.user_id


async def test_real_users_upload_and_own_their_media(
    mmr: RunningMmr, synapse_homeserver: SynapseServer, runtime_for: object
) -> None:
    alice, bob = user(synapse_homeserver, "alice"), user(synapse_homeserver, "bob")
    data = unique_bytes(3000)
    async with as_user(mmr, alice.access_token) as client:
        mxc = (await client.post(UPLOAD, content=data)).json()["content_uri"]
        assert (await client.get("/_matrix/client/v1/media/config")).status_code == 200
    assert await owner_of(mmr, runtime_for, mxc) == alice.user_id
    async with as_user(mmr, bob.access_token) as client:
        assert (await client.get(f"{DOWNLOAD}/{media_path(mxc)}")).content == data


async def test_missing_and_unknown_tokens(mmr: RunningMmr) -> None:
    async with httpx.AsyncClient(base_url=mmr.url, headers={"Host": "localhost"}) as anonymous:
        assert_error(await anonymous.post(UPLOAD, content=b"x"), 401, "M_MISSING_TOKEN")
    async with as_user(mmr, "not-a-token-synapse-issued") as client:
        assert_error(await client.post(UPLOAD, content=b"x"), 401, "M_UNKNOWN_TOKEN")
        assert_error(await client.post(CREATE), 401, "M_UNKNOWN_TOKEN")


async def test_put_by_another_real_user_is_403(
    mmr: RunningMmr, synapse_homeserver: SynapseServer
) -> None:
    alice, bob = user(synapse_homeserver, "alice"), user(synapse_homeserver, "bob")
    async with as_user(mmr, alice.access_token) as as_alice, as_user(mmr, bob.access_token) as as_bob:
        mxc = (await as_alice.post(CREATE)).json()["content_uri"]
        assert_error(await as_bob.put(f"{UPLOAD}/{media_path(mxc)}", content=b"mine"), 403, "M_FORBIDDEN")
        assert (await as_alice.put(f"{UPLOAD}/{media_path(mxc)}", content=b"mine")).status_code == 200
        assert (await as_bob.get(f"{DOWNLOAD}/{media_path(mxc)}")).content == b"mine"


async def test_guests_download_but_cannot_upload(
    mmr: RunningMmr, synapse_homeserver: SynapseServer
) -> None:
    guest = synapse_homeserver.register_guest()
    alice = user(synapse_homeserver, "alice")
    async with as_user(mmr, alice.access_token) as client:
        mxc = (await client.post(UPLOAD, content=b"for everyone")).json()["content_uri"]
    async with as_user(mmr, guest.access_token) as client:
        assert_error(await client.post(UPLOAD, content=b"x"), 403, "M_GUEST_ACCESS_FORBIDDEN")
        assert_error(await client.post(CREATE), 403, "M_GUEST_ACCESS_FORBIDDEN")
        # Guests may read authenticated media (MSC4189).
        assert (await client.get(f"{DOWNLOAD}/{media_path(mxc)}")).content == b"for everyone"


async def test_appservice_acts_as_its_users(
    mmr: RunningMmr, synapse_homeserver: SynapseServer, runtime_for: object
) -> None:
    bridged = synapse_homeserver.register_appservice_user(
        BRIDGE_APPSERVICE, f"bridge_{uuid.uuid4().hex[:8]}"
    )
    outsider = user(synapse_homeserver, "carol")
    async with as_user(mmr, BRIDGE_APPSERVICE.as_token) as client:
        as_bridged = {"user_id": bridged}
        mxc = (await client.post(UPLOAD, content=unique_bytes(), params=as_bridged)).json()["content_uri"]
        reserved = (await client.post(CREATE, params=as_bridged)).json()["content_uri"]
        put = await client.put(f"{UPLOAD}/{media_path(reserved)}", content=b"bridged", params=as_bridged)
        assert put.status_code == 200, put.text
        sender = (await client.post(UPLOAD, content=unique_bytes())).json()["content_uri"]
        refused = await client.post(UPLOAD, content=b"x", params={"user_id": outsider.user_id})
    assert await owner_of(mmr, runtime_for, mxc) == bridged
    assert await owner_of(mmr, runtime_for, reserved) == bridged
    assert await owner_of(mmr, runtime_for, sender) == f"@{BRIDGE_APPSERVICE.sender_localpart}:localhost"
    # Synapse refuses to let the appservice act outside its namespace; so do we.
    assert_error(refused, 403, "M_FORBIDDEN")


async def test_quota_applies_to_the_users_its_glob_matches(
    mmr: RunningMmr, synapse_homeserver: SynapseServer
) -> None:
    limited, free = user(synapse_homeserver, "quota"), user(synapse_homeserver, "alice")
    async with as_user(mmr, limited.access_token) as as_limited, as_user(mmr, free.access_token) as as_free:
        assert (await as_limited.post(UPLOAD, content=unique_bytes())).status_code == 200
        refused = await as_limited.post(UPLOAD, content=unique_bytes())
        assert "maxFiles 1" in assert_error(refused, 403, "M_FORBIDDEN")["error"]
        for _ in range(2):
            assert (await as_free.post(UPLOAD, content=unique_bytes())).status_code == 200


async def test_upload_rate_limit_is_per_user(
    mmr: RunningMmr, synapse_homeserver: SynapseServer
) -> None:
    busy, other = user(synapse_homeserver, "busy"), user(synapse_homeserver, "alice")
    async with as_user(mmr, busy.access_token) as as_busy, as_user(mmr, other.access_token) as as_other:
        for _ in range(RATE_BURST):
            assert (await as_busy.post(UPLOAD, content=unique_bytes())).status_code == 200
        assert_error(await as_busy.post(UPLOAD, content=unique_bytes()), 429, "M_LIMIT_EXCEEDED")
        assert (await as_other.post(UPLOAD, content=unique_bytes())).status_code == 200


async def test_real_users_upload_while_redis_is_down(
    tmp_path: Path, s3_server: S3Server, synapse_homeserver: SynapseServer,
) -> None:
    homeservers = [{"name": "localhost", "csApi": synapse_homeserver.client_url}]
    alice = user(synapse_homeserver, "alice")
    with temporary_database("mmr_upload_noredis") as database:
        config = _config(tmp_path, database, DEAD_REDIS, s3_server, homeservers)
        with serve_all(config) as server:
            node = RunningMmr(server.url, config, tmp_path)
            async with as_user(node, alice.access_token) as client:
                answer = await client.post(UPLOAD, content=b"redis is down")
                assert answer.status_code == 200, answer.text
                got = await client.get(f"{DOWNLOAD}/{media_path(answer.json()['content_uri'])}")
                assert got.content == b"redis is down"


async def test_each_homeserver_checks_its_own_tokens(
    tmp_path: Path, redis_url: str, s3_server: S3Server,
    synapse_homeserver: SynapseServer, synapse_factory: SynapseFactory,
) -> None:
    second = synapse_factory(server_name="second.test")
    homeservers: list[dict[str, Any]] = [
        {"name": synapse_homeserver.server_name, "csApi": synapse_homeserver.client_url},
        {"name": "second.test", "csApi": second.client_url, "uploads": {"maxBytes": 100}},
    ]
    first_user, second_user = user(synapse_homeserver, "alice"), user(second, "dave")
    with temporary_database("mmr_upload_two_hs") as database:
        config = _config(tmp_path, database, redis_url, s3_server, homeservers)
        with serve_all(config) as server:
            node = RunningMmr(server.url, config, tmp_path)
            async with (
                as_user(node, first_user.access_token, "localhost") as first_home,
                as_user(node, first_user.access_token, "second.test") as first_abroad,
                as_user(node, second_user.access_token, "second.test") as second_home,
            ):
                mine = await first_home.post(UPLOAD, content=b"x" * 200)
                assert mine.json()["content_uri"].startswith("mxc://localhost/")
                assert_error(await first_abroad.post(UPLOAD, content=b"x"), 401, "M_UNKNOWN_TOKEN")
                theirs = await second_home.post(UPLOAD, content=b"x" * 50)
                assert theirs.json()["content_uri"].startswith("mxc://second.test/")
                too_big = await second_home.post(UPLOAD, content=b"x" * 200)
                assert_error(too_big, 413, "M_TOO_LARGE")
