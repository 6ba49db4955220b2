"""A small download byte budget for tests, and what a client over it is answered."""

from __future__ import annotations

import random
from typing import Any

import httpx

from tests.conftest import RunningMmr

FILE = 60_000
LIMIT = 150_000  # capacity + overflow: two files fit, a third does not
DRAIN_PER_SECOND = 100  # slow enough that a test never sees more than a few KB drain
CHUNK = 10_000
BUDGET: dict[str, Any] = {
    "rateLimit": {
        "enabled": True, "requestsPerSecond": 1000, "burst": 1000,
        "buckets": {"downloads": {"capacityBytes": 100_000, "overflowLimitBytes": 50_000,
                                  "drainBytesPerMinute": DRAIN_PER_SECOND * 60}},
    },
    "repo": {"trustedProxies": ["127.0.0.1/32"], "freezeUnauthenticatedMedia": False},
    "downloads": {"defaultRangeChunkSizeBytes": CHUNK},
}


def random_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def as_new_client(node: RunningMmr, ip: str | None = None) -> httpx.AsyncClient:
    return node.client(headers={"X-Forwarded-For": ip or random_ip()})


def assert_limited(response: httpx.Response, over_bytes: int) -> None:
    """429 with the wait the drain rate gives for `over_bytes` (less what drained meanwhile)."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["errcode"] == "M_LIMIT_EXCEEDED"
    full_wait_ms = over_bytes * 1000 // DRAIN_PER_SECOND
    assert full_wait_ms - 10_000 < body["retry_after_ms"] <= full_wait_ms
    assert abs(int(response.headers["retry-after"]) - body["retry_after_ms"] / 1000) <= 1
