"""Errors from PostgreSQL, Redis and S3 are counted by dependency and exception type."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis.exceptions
import sqlalchemy.exc
from botocore.exceptions import EndpointConnectionError

from mmr.embedded import all_routers
from shared.config import parse_config
from shared.metrics.record import classify_dependency_error
from shared.storage.base import DatastoreUnavailable
from shared.web.app import make_app
from tests.conftest import embedded_raw_config
from tests.infra.http_server import ServerThread, free_ports
from tests.shared.metrics.conftest import metrics_section, scrape


def test_errors_are_classified_by_the_library_that_raised_them() -> None:
    assert classify_dependency_error(redis.exceptions.ConnectionError("down")) == (
        "redis", "ConnectionError")
    assert classify_dependency_error(
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("gone"))) == (
        "database", "OperationalError")
    assert classify_dependency_error(ValueError("mine")) == ("other", "ValueError")


def test_a_wrapped_error_counts_for_the_dependency_underneath() -> None:
    try:
        try:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")
        except EndpointConnectionError as exc:
            raise DatastoreUnavailable("s3 datastore 's3'") from exc
    except DatastoreUnavailable as wrapped:
        assert classify_dependency_error(wrapped) == ("s3", "EndpointConnectionError")


def test_a_failed_readiness_check_counts_the_redis_error(tmp_path: Path) -> None:
    metrics_port, dead_redis, server_port = free_ports(3)
    raw = embedded_raw_config(tmp_path, metrics=metrics_section(metrics_port),
                              redis={"enabled": True, "url": f"redis://127.0.0.1:{dead_redis}/0"})
    app = make_app("embedded", all_routers(), config=parse_config(raw), machine_id=0)
    with ServerThread(app, port=server_port) as server:
        before = scrape(metrics_port)
        ready = httpx.get(server.url + "/readyz", timeout=30)
        after = scrape(metrics_port)
    assert ready.json()["checks"]["coordination"].startswith(("failed", "degraded"))
    assert after.delta(before, "media_dependency_errors_total", dependency="redis",
                       service="embedded") >= 1
