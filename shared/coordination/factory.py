"""Choose the coordinator for a deployment."""

from __future__ import annotations

from .base import Coordinator
from .inprocess import InProcessCoordinator
from .redis import RedisCoordinator


def make_coordinator(redis_url: str | None, namespace: str = "mmr") -> Coordinator:
    """Redis when a URL is configured (clusters), else in-process (single embedded process).

    An empty string counts as "not configured", as an unset environment variable often is.
    """
    if redis_url:
        return RedisCoordinator.from_config(redis_url, namespace=namespace)
    return InProcessCoordinator()
