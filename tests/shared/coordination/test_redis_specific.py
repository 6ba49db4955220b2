"""Behaviour that only the Redis coordinator has: real cross-process keys and namespaces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from shared.coordination.factory import make_coordinator
from shared.coordination.inprocess import InProcessCoordinator
from shared.coordination.redis import RedisCoordinator


@pytest.fixture
async def rcoord(redis_url: str, namespace: str) -> AsyncIterator[RedisCoordinator]:
    coord = RedisCoordinator.from_config(redis_url, namespace=namespace)
    yield coord
    await coord.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_lock_left_by_crashed_process_expires(
    rcoord: RedisCoordinator, raw: aioredis.Redis
) -> None:
    # What a process that died holding the lock leaves behind: a key with a TTL, no renewal.
    await raw.set(rcoord.lock_key("crashed"), b"dead-token", px=300)
    started = time.monotonic()
    async with rcoord.lock("crashed", wait_seconds=3):
        waited = time.monotonic() - started
    assert 0.2 <= waited < 2.0


async def test_release_does_not_delete_someone_elses_lock(
    rcoord: RedisCoordinator, raw: aioredis.Redis
) -> None:
    token = await rcoord.acquire("stolen", ttl_seconds=0.1, wait_seconds=0)
    await raw.set(rcoord.lock_key("stolen"), b"new-owner", px=10_000)  # ours expired, retaken
    await rcoord.release("stolen", token)
    assert await raw.get(rcoord.lock_key("stolen")) == b"new-owner"


async def test_renewal_extends_ttl(rcoord: RedisCoordinator, raw: aioredis.Redis) -> None:
    # Generous margins: renewals every ttl/3 must survive a loaded 2-core CI machine.
    async with rcoord.lock("renewed", ttl_seconds=1.5):
        await asyncio.sleep(3.0)
        assert await raw.pttl(rcoord.lock_key("renewed")) > 0
    assert await raw.exists(rcoord.lock_key("renewed")) == 0


async def test_keys_and_channels_are_namespaced(
    rcoord: RedisCoordinator, redis_url: str, raw: aioredis.Redis
) -> None:
    other = RedisCoordinator(redis_url, namespace=rcoord.namespace + "-other")
    try:
        await rcoord.cache_set("k", b"mine", ttl_seconds=10)
        assert await other.cache_get("k") is None
        assert await raw.get(f"{rcoord.namespace}:cache:k") == b"mine"
        sub = await other.subscribe("ch")
        await rcoord.publish("ch", b"not for you")
        assert await sub.get(0.1) is None
        await sub.close()
        async with rcoord.lock("same"), other.lock("same", wait_seconds=0.1):
            pass
    finally:
        await other.close()


async def test_check_ready(rcoord: RedisCoordinator) -> None:
    await rcoord.check_ready()
    await InProcessCoordinator().check_ready()


async def test_factory_picks_implementation(redis_url: str) -> None:
    assert isinstance(make_coordinator(None), InProcessCoordinator)
    assert isinstance(make_coordinator(""), InProcessCoordinator)
    coord = make_coordinator(redis_url)
    assert isinstance(coord, RedisCoordinator)
    await coord.close()
