"""Cache behaviour, identical for both coordinators."""

from __future__ import annotations

import asyncio

from shared.coordination.base import Coordinator
from shared.coordination.inprocess import InProcessCoordinator


async def test_set_get_delete_visible_to_peer(coord: Coordinator, peer: Coordinator) -> None:
    assert await coord.cache_get("k") is None
    await coord.cache_set("k", b"\x00value", ttl_seconds=10)
    assert await peer.cache_get("k") == b"\x00value"
    await peer.cache_set("k", b"newer", ttl_seconds=10)
    assert await coord.cache_get("k") == b"newer"
    await coord.cache_delete("k")
    assert await peer.cache_get("k") is None
    await coord.cache_delete("k")  # deleting a missing key is fine


async def test_entries_expire(coord: Coordinator) -> None:
    await coord.cache_set("short", b"v", ttl_seconds=0.15)
    await coord.cache_set("long", b"v", ttl_seconds=10)
    await asyncio.sleep(0.3)
    assert await coord.cache_get("short") is None
    assert await coord.cache_get("long") == b"v"


async def test_non_positive_ttl_removes(coord: Coordinator) -> None:
    await coord.cache_set("k", b"v", ttl_seconds=10)
    await coord.cache_set("k", b"v2", ttl_seconds=0)
    assert await coord.cache_get("k") is None


async def test_inprocess_cache_is_bounded_lru() -> None:
    cache = InProcessCoordinator(cache_max_entries=3)
    for key in ("a", "b", "c"):
        await cache.cache_set(key, key.encode(), ttl_seconds=10)
    assert await cache.cache_get("a") == b"a"  # "a" is now the most recently used
    await cache.cache_set("d", b"d", ttl_seconds=10)
    assert await cache.cache_get("b") is None
    assert [await cache.cache_get(k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]
