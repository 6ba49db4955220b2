"""The test-infra helper that finds or starts Redis (tests/infra/redis_server.py)."""

from __future__ import annotations

import socket

import pytest
import redis

from tests.infra import redis_server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def no_local_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(redis_server.ENV_VAR, raising=False)
    monkeypatch.setattr(redis_server, "LOCAL_PORT", _closed_port())
    # Don't disturb a server the session itself may have started.
    monkeypatch.setattr(redis_server, "_process", None)


def test_env_var_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setenv(redis_server.ENV_VAR, "redis://example.invalid:1/3")
    assert redis_server._resolve() == "redis://example.invalid:1/3"


def test_each_xdist_worker_takes_its_own_url_from_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(redis_server.ENV_VAR, "redis://h:1/3, redis://h:1/4")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert redis_server._resolve() == "redis://h:1/4"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    with pytest.raises(RuntimeError, match="one URL"):
        redis_server._resolve()


def test_each_xdist_worker_has_its_own_database_on_the_local_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(redis_server.ENV_VAR, raising=False)
    monkeypatch.setattr(redis_server, "_answers_ping", lambda _host, _port: True)
    monkeypatch.setattr(redis_server, "_flush", lambda _url: None)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert redis_server._resolve().endswith(f"/{redis_server.TEST_DB + 1}")


@pytest.mark.usefixtures("no_local_redis")
def test_starts_private_server_when_none_answers() -> None:
    url = redis_server._resolve()
    client = redis.Redis.from_url(url)
    try:
        assert client.ping()
    finally:
        client.close()
        redis_server.stop_redis()


@pytest.mark.usefixtures("no_local_redis")
def test_missing_binary_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server.shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match="redis-server"):
        redis_server._resolve()
