"""Pub/sub behaviour, identical for both coordinators."""

from __future__ import annotations

import asyncio
import time

from shared.coordination.base import Coordinator


async def test_delivered_to_every_subscriber_across_instances(
    coord: Coordinator, peer: Coordinator
) -> None:
    subs = [
        await coord.subscribe("news"),
        await peer.subscribe("news"),
        await peer.subscribe("news"),
    ]
    other = await coord.subscribe("other")
    await coord.publish("news", b"one")
    await peer.publish("news", b"two")
    for sub in subs:
        assert await sub.get(2.0) == b"one"
        assert await sub.get(2.0) == b"two"
    assert await other.get(0.05) is None
    for sub in [*subs, other]:
        await sub.close()


async def test_get_times_out_with_none(coord: Coordinator) -> None:
    sub = await coord.subscribe("quiet")
    started = time.monotonic()
    assert await sub.get(0.2) is None
    assert 0.19 <= time.monotonic() - started < 1.0
    await sub.close()


async def test_async_iteration(coord: Coordinator, peer: Coordinator) -> None:
    sub = await coord.subscribe("stream")

    async def collect() -> list[bytes]:
        received = []
        async for message in sub:
            received.append(message)
            if len(received) == 3:
                break
        return received

    reader = asyncio.create_task(collect())
    for message in (b"a", b"b", b"c"):
        await peer.publish("stream", message)
    assert await asyncio.wait_for(reader, 3.0) == [b"a", b"b", b"c"]
    await sub.close()


async def test_closed_subscription_receives_nothing(coord: Coordinator, peer: Coordinator) -> None:
    sub = await coord.subscribe("gone")
    await sub.close()
    await peer.publish("gone", b"late")
    assert await sub.get(0.05) is None
    await sub.close()  # idempotent
