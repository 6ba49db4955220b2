"""Redis beyond one server: every coordination feature (locks, leases, pub/sub, streams, caches,
rate limits) against real servers on loopback: a Sentinel-managed Redis, before and after a
failover to the replica through clients made before it (as a running process's are), and a
Redis Cluster of three masters with keys spread over all of them."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
import yaml

from shared.config import parse_config
from shared.coordination.base import LockNotAcquired
from shared.coordination.leases import RedisLeaseStore
from shared.coordination.queue import RedisWorkQueue
from shared.coordination.redis import RedisCoordinator
from tests.cluster.conftest import Start, client, cluster_view
from tests.cluster.test_faults import _async_upload_wakes_a_waiter
from tests.conftest import cluster_raw_config, new_bucket
from tests.infra.processes import MmrProcess, run_mmr
from tests.infra.redis_cluster import RedisClusterGroup
from tests.infra.redis_sentinel import RedisSentinelGroup
from tests.infra.seaweedfs import S3Server

RECOVERY_SECONDS = 20.0


class Clients:
    """What one mmr process holds: a coordinator, a lease store and a work queue."""

    def __init__(self, url: str) -> None:
        # As mmr's own: the coordinator's keys spread over the slots; the lease store's prefix
        # is a hash tag (cluster_prefix), so its multi-key scripts stay in one slot.
        unique = uuid.uuid4().hex[:8]
        self.coordinator = RedisCoordinator(url, namespace=f"mmr-{unique}")
        self.leases = RedisLeaseStore.from_url(url, f"mmr:{{cluster:{unique}}}")
        self.queue = RedisWorkQueue(url, f"mmr-{unique}:jobs", "workers")

    async def close(self) -> None:
        await self.coordinator.close()
        await self.leases.close()
        await self.queue.close()


async def every_feature_works(clients: Clients, tag: str) -> None:
    """Raises unless each feature really went through Redis (none of them failed open)."""
    coordinator = clients.coordinator
    async with coordinator.lock(f"lock-{tag}", ttl_seconds=10, wait_seconds=1):
        with pytest.raises(LockNotAcquired):
            async with coordinator.lock(f"lock-{tag}", ttl_seconds=10, wait_seconds=0.2):
                pass
    await coordinator.cache_set(f"cache-{tag}", b"cached", 30)
    assert await coordinator.cache_get(f"cache-{tag}") == b"cached"
    subscription = await coordinator.subscribe(f"channel-{tag}")
    try:
        await coordinator.publish(f"channel-{tag}", b"hello")
        assert await subscription.get(5) == b"hello"
    finally:
        await subscription.close()
    assert await coordinator.rate_limit(f"rate-{tag}", 0.001, 1) is None
    assert await coordinator.rate_limit(f"rate-{tag}", 0.001, 1) is not None  # limited: shared
    assert await coordinator.leaky_bucket(f"bytes-{tag}", 10, 10, 0.001, 0) is None
    assert await coordinator.leaky_bucket(f"bytes-{tag}", 10, 10, 0.001, 0) is not None  # full
    assert await clients.leases.claim(f"machine:{tag}", "me", {"service": "upload"}, 30) is None
    holder = await clients.leases.claim(f"machine:{tag}", "another", {"service": "upload"}, 30)
    assert holder is not None and holder.get("service") == "upload"
    await clients.queue.put({"job": tag})
    async with contextlib.aclosing(clients.queue.consume("worker-1")) as consumer:  # type: ignore[type-var]
        assert await asyncio.wait_for(anext(consumer), 10) == {"job": tag}


async def _eventually(attempt: Callable[[], Awaitable[None]], within: float = RECOVERY_SECONDS) -> float:
    """Seconds until `attempt` succeeds (requests during a switch may fail, as in an outage)."""
    began = time.monotonic()
    while True:
        try:
            await attempt()
            return time.monotonic() - began
        except Exception:
            if time.monotonic() - began > within:
                raise
            await asyncio.sleep(0.2)


async def test_sentinel_failover_to_the_replica_keeps_every_feature_working(tmp_path: Path) -> None:
    with RedisSentinelGroup(tmp_path / "sentinel") as group:
        config = parse_config({"redis": {"enabled": True, "sentinel": {
            "masterName": group.master_name, "addresses": [group.sentinel_address]}}})
        url = config.redis.effective_url
        assert url is not None and url.startswith("redis+sentinel://")
        clients = Clients(url)
        try:
            await every_feature_works(clients, "before")
            assert await clients.leases.claim("machine:0", "zero", {"service": "admin"}, 60) is None
            listener = await clients.coordinator.subscribe("media-changed")
            heard: list[bytes] = []

            async def listen() -> None:
                async for message in listener:
                    heard.append(message)

            listening = asyncio.create_task(listen())
            with sync_redis.Redis(host="127.0.0.1", port=group.master.port) as master:
                master.execute_command("WAIT", 1, 2000)  # the replica has every write so far
            new_master = await asyncio.to_thread(group.fail_over)

            switched_after = await _eventually(lambda: every_feature_works(clients, "after"))
            # A lease taken before the failover is still held (it was replicated).
            zero = await clients.leases.holder("machine:0")
            assert zero is not None and zero.get("service") == "admin"
            # A subscription made before the failover hears what is published after it.
            await _eventually(lambda: _published_and_heard(clients, heard))
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            await listener.close()
            with sync_redis.Redis(host="127.0.0.1", port=new_master) as redis:
                assert redis.info("replication")["role"] == "master"
                assert redis.exists(f"{clients.coordinator.namespace}:cache:cache-after")
            print(f"sentinel failover: every feature working again {switched_after:.1f}s after "
                  "the sentinel named the new master")
        finally:
            await clients.close()


async def _published_and_heard(clients: Clients, heard: list[bytes]) -> None:
    await clients.coordinator.publish("media-changed", b"after the failover")
    await asyncio.sleep(0.3)
    assert b"after the failover" in heard


async def test_a_redis_cluster_serves_every_feature_with_keys_on_every_master(tmp_path: Path) -> None:
    with RedisClusterGroup(tmp_path / "cluster") as group:
        shards = [{"name": f"node{n}", "addr": address} for n, address in enumerate(group.addresses)]
        config = parse_config({"redis": {"enabled": True, "cluster": True, "shards": shards}})
        url = config.redis.effective_url
        assert url is not None and url.startswith("redis+cluster://")
        clients = Clients(url)
        try:
            for n in range(12):  # enough keys that every master holds some
                await every_feature_works(clients, f"k{n}")
        finally:
            await clients.close()
        holding = []
        for node in group.nodes:
            with sync_redis.Redis(host="127.0.0.1", port=node.port) as redis:
                holding.append(redis.dbsize())
        assert all(count > 0 for count in holding), holding


def _cluster_config(tmp_path: Path, database: str, s3_server: S3Server, redis: dict[str, Any]) -> Path:
    raw = cluster_raw_config(tmp_path, database, "unused", s3_server, new_bucket(s3_server))
    raw["redis"] = {"enabled": True, **redis}
    raw["cluster"] = {"leaseSeconds": 6}
    config = tmp_path / "media-repo.yaml"
    config.write_text(yaml.safe_dump(raw))
    migrated = run_mmr(["migrate", "--config", str(config)])
    assert migrated.returncode == 0, migrated.stderr
    return config


def _uploads_and_downloads(nodes: dict[str, MmrProcess]) -> None:
    data = uuid.uuid4().bytes * 100
    with client(nodes["upload"]) as http:
        answer = http.post("/_matrix/media/v3/upload", content=data,
                           headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 200, answer.text
    with client(nodes["download"]) as http:
        got = http.get(f"/_matrix/client/v1/media/download/{answer.json()['content_uri'][6:]}")
    assert got.status_code == 200 and got.content == data


def _everyone_holds_a_lease(admin: MmrProcess, count: int) -> None:
    view = cluster_view(admin)
    assert len(view["members"]) == count, view
    # Only thumbnail and preview are missing (not started here): machine 0 is there, no skew.
    assert [p for p in view["problems"] if p["kind"] != "no-process"] == [], view["problems"]


def _start_processes(start: Start, config: Path) -> dict[str, MmrProcess]:
    return {s: start(s, s, config, None if s == "admin" else "auto")
            for s in ("admin", "upload", "download")}


def test_mmr_processes_run_on_sentinel_and_ride_out_a_failover(
    tmp_path: Path, database: str, s3_server: S3Server, start: Start
) -> None:
    with RedisSentinelGroup(tmp_path / "sentinel") as group:
        config = _cluster_config(tmp_path, database, s3_server, {"sentinel": {
            "masterName": group.master_name, "addresses": [group.sentinel_address]}})
        nodes = _start_processes(start, config)
        _uploads_and_downloads(nodes)
        _everyone_holds_a_lease(nodes["admin"], 3)
        group.fail_over()
        asyncio.run(_eventually(_async(_uploads_and_downloads, nodes)))
        # The heartbeats renew every lease on the new master; pub/sub wakes waiters through it.
        asyncio.run(_eventually(_async(_everyone_holds_a_lease, nodes["admin"], 3)))
        with sync_redis.Redis(host="127.0.0.1", port=group.replica.port) as redis:
            assert any(b":lease:machine:0" in key for key in redis.keys("*lease*"))
        assert _async_upload_wakes_a_waiter(nodes, time.monotonic() + 30) < 5.0
        for node in nodes.values():  # while their Redis is still there to give leases back to
            node.stop()


def test_mmr_processes_run_on_a_redis_cluster(
    tmp_path: Path, database: str, s3_server: S3Server, start: Start
) -> None:
    with RedisClusterGroup(tmp_path / "cluster") as group:
        shards = [{"name": f"node{n}", "addr": address} for n, address in enumerate(group.addresses)]
        config = _cluster_config(tmp_path, database, s3_server, {"cluster": True, "shards": shards})
        nodes = _start_processes(start, config)
        _uploads_and_downloads(nodes)
        _everyone_holds_a_lease(nodes["admin"], 3)
        assert _async_upload_wakes_a_waiter(nodes, time.monotonic() + 30) < 5.0
        for node in nodes.values():
            node.stop()


def _async(function: Callable[..., None], *args: Any) -> Callable[[], Awaitable[None]]:
    async def attempt() -> None:
        await asyncio.to_thread(function, *args)
    return attempt
