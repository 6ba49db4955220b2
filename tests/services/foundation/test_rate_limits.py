"""The per-IP request limit (`rateLimit`) covers every client route, not only uploads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import parse_config
from tests.conftest import RunningMmr, embedded_raw_config, serve_all


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningMmr]:
    config = parse_config(embedded_raw_config(
        tmp_path, rateLimit={"enabled": True, "requestsPerSecond": 0.01, "burst": 2}))
    with serve_all(config) as server:
        yield RunningMmr(server.url, config, tmp_path)


@pytest.mark.parametrize("path", [
    "/_matrix/client/v1/media/download/localhost/unknown",
    "/_matrix/media/v3/download/localhost/unknown",
    "/_matrix/client/v1/media/thumbnail/localhost/unknown?width=32&height=32",
    "/_matrix/media/v3/thumbnail/localhost/unknown?width=32&height=32",
    "/_matrix/client/v1/media/preview_url?url=http%3A%2F%2F127.0.0.1%2F",
])
async def test_a_client_past_its_burst_gets_429_with_retry_after(limited: RunningMmr, path: str) -> None:
    async with limited.client() as client:
        answers = [await client.get(path) for _ in range(3)]
    assert [a.status_code == 429 for a in answers] == [False, False, True]
    limited_answer = answers[2]
    assert limited_answer.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert int(limited_answer.headers["retry-after"]) >= 1
    assert limited_answer.json()["retry_after_ms"] > 0


async def test_health_checks_are_never_limited(limited: RunningMmr) -> None:
    async with limited.client(token=None) as client:
        answers = [await client.get("/healthz") for _ in range(5)]
    assert all(a.status_code == 200 for a in answers)
