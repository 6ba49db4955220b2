"""Rate limits: per client IP (X-Forwarded-For only from trusted proxies) and per user for uploads,
one budget across every process of a cluster (Redis), failing open when Redis is down.
"""

from __future__ import annotations

import logging
import random

import pytest
import redis.asyncio as aioredis

from shared.config import RepoConfig
from shared.web.ratelimit import client_ip
from tests.services.upload.conftest import ConfigFactory, Serve
from tests.services.upload.helpers import DEAD_REDIS, assert_error, create, unique_bytes, upload

PROXY = "127.0.0.1/32"


def random_ip() -> str:
    """A client address no other test (or test run sharing the Redis) limits."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.mark.parametrize(("peer", "forwarded", "repo", "expected"), [
    # Not a trusted proxy: the header is ignored, whatever it says.
    ("203.0.113.9", ["198.51.100.1"], {}, "203.0.113.9"),
    ("203.0.113.9", ["198.51.100.1"], {"trustedProxies": ["10.0.0.0/8"]}, "203.0.113.9"),
    # A trusted proxy: the nearest address that is not one of ours.
    ("10.0.0.2", ["198.51.100.1"], {"trustedProxies": ["10.0.0.0/8"]}, "198.51.100.1"),
    ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.7"], {"trustedProxies": ["10.0.0.0/8"]},
     "198.51.100.1"),
    ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], {"trustedProxies": ["10.0.0.0/8"]}, "198.51.100.1"),
    ("10.0.0.2", ["garbage"], {"trustedProxies": ["10.0.0.0/8"]}, "10.0.0.2"),
    ("10.0.0.2", ["10.0.0.9"], {"trustedProxies": ["10.0.0.0/8"]}, "10.0.0.9"),
    ("::1", ["2001:db8::1"], {"trustedProxies": ["::1/128"]}, "2001:db8::1"),
    # trustAnyForwardedAddress: the client-most entry, from any peer.
    ("203.0.113.9", ["6.6.6.6, 198.51.100.1"], {"trustAnyForwardedAddress": True}, "6.6.6.6"),
    ("203.0.113.9", [], {"trustAnyForwardedAddress": True}, "203.0.113.9"),
])
def test_client_ip(peer: str, forwarded: list[str], repo: dict[str, object], expected: str) -> None:
    assert client_ip(peer, forwarded, RepoConfig.model_validate(repo)) == expected


def test_bad_trusted_proxy_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="trustedProxies"):
        RepoConfig.model_validate({"trustedProxies": ["10.0.0.0/33"]})


def _limited(**rate: object) -> dict[str, object]:
    return {"rateLimit": {"enabled": True, **rate}, "repo": {"trustedProxies": [PROXY]}}


async def test_per_ip_limit_behind_a_trusted_proxy(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config(**_limited(requestsPerSecond=0.1, burst=3)))
    client_a, client_b = random_ip(), random_ip()
    async with node.client() as client:
        for _ in range(3):
            response = await upload(client, unique_bytes(), headers={"X-Forwarded-For": client_a})
            assert response.status_code == 200, response.text
        limited = await client.get("/_matrix/media/v3/config", headers={"X-Forwarded-For": client_a})
        other = await client.get("/_matrix/media/v3/config", headers={"X-Forwarded-For": client_b})
    body = assert_error(limited, 429, "M_LIMIT_EXCEEDED")
    assert 5_000 < body["retry_after_ms"] <= 10_000
    assert 5 <= int(limited.headers["retry-after"]) <= 10
    assert other.status_code == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    make_embedded_config: ConfigFactory, serve: Serve
) -> None:
    config = make_embedded_config(rateLimit={"enabled": True, "requestsPerSecond": 0.1, "burst": 2})
    node = serve(config)
    async with node.client() as client:
        answers = [
            await client.get("/_matrix/media/v3/config", headers={"X-Forwarded-For": random_ip()})
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [200, 200, 429]


async def test_one_budget_across_machines(make_cluster_config: ConfigFactory, serve: Serve) -> None:
    config = make_cluster_config(**_limited(requestsPerSecond=0.1, burst=4))
    machines = [serve(config, machine_id=0), serve(config, machine_id=12)]
    ip = random_ip()
    statuses = []
    for turn in range(6):
        async with machines[turn % 2].client(headers={"X-Forwarded-For": ip}) as client:
            statuses.append((await client.get("/_matrix/media/v3/config")).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def test_per_user_upload_limit(
    make_config: ConfigFactory, serve: Serve, mode: str, request: pytest.FixtureRequest
) -> None:
    if mode == "cluster":
        # The bucket key is per user and the shared-secret user is the same in every test run.
        redis = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
        await redis.delete("mmr:rl:user:uploads:@sharedsecret")
        await redis.aclose()
    node = serve(make_config(uploads={"ratePerSecond": 0.1, "rateBurst": 2}))
    async with node.client() as client:
        statuses = [(await upload(client, unique_bytes())).status_code for _ in range(2)]
        limited = await upload(client, unique_bytes())
        created = await create(client)
        config_answer = await client.get("/_matrix/media/v3/config")
    assert statuses == [200, 200]
    assert "uploads" in assert_error(limited, 429, "M_LIMIT_EXCEEDED")["error"]
    assert_error(created, 429, "M_LIMIT_EXCEEDED")
    assert config_answer.status_code == 200


async def test_unreachable_redis_fails_open(
    make_cluster_config: ConfigFactory, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_cluster_config(
        redis_url=DEAD_REDIS, **_limited(requestsPerSecond=0.1, burst=1),
        uploads={"ratePerSecond": 0.1, "rateBurst": 1},
    )
    node = serve(config)
    caplog.set_level(logging.WARNING)
    data = unique_bytes(2000)
    async with node.client() as client:
        statuses = [(await upload(client, data)).status_code for _ in range(4)]
        mxc = (await upload(client, data)).json()["content_uri"]
        got = await client.get(f"/_matrix/client/v1/media/download/{mxc.removeprefix('mxc://')}")
    assert statuses == [200] * 4
    assert got.content == data
    assert "rate limiter failing open" in caplog.text
