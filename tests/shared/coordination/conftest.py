"""Fixtures: every behaviour test runs against both coordinators.

`coord` and `peer` stand for two processes. For Redis they are two separate `RedisCoordinator`
instances (separate connection pools) on the same namespace; for the in-process coordinator,
whose state is per process by design, `peer` is `coord` itself. Each test gets a fresh namespace,
so tests never see each other's keys or channels.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from shared.coordination.base import Coordinator
from shared.coordination.inprocess import InProcessCoordinator
from shared.coordination.redis import RedisCoordinator


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["inprocess", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def coord(
    backend: str, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[Coordinator]:
    instance: Coordinator
    if backend == "redis":
        # Looked up lazily so in-process tests never need a Redis.
        instance = RedisCoordinator(request.getfixturevalue("redis_url"), namespace)
    else:
        instance = InProcessCoordinator()
    yield instance
    await instance.close()


@pytest.fixture
async def peer(
    backend: str, coord: Coordinator, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[Coordinator]:
    if backend != "redis":
        yield coord
        return
    other = RedisCoordinator(request.getfixturevalue("redis_url"), namespace)
    yield other
    await other.close()
