"""A Sentinel-managed Redis of the test's own on loopback: a master, a replica of it, and one
sentinel (quorum 1) that promotes the replica a second after the master stops answering."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import redis

from tests.infra.http_server import free_port
from tests.infra.private_redis import PrivateRedis
from tests.infra.redis_server import _answers_ping
from tests.infra.started import StoppedOnFailedStart

DOWN_AFTER_MS = 1000
_WAIT_SECONDS = 30.0


def _wait(what: str, check: object, timeout: float = _WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis sentinel setup: {what} did not happen in {timeout}s")
        time.sleep(0.1)


class RedisSentinelGroup(StoppedOnFailedStart):
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.master_name = f"mmr-{uuid.uuid4().hex[:8]}"
        self.master = PrivateRedis(workdir / "master")
        self.replica = PrivateRedis(workdir / "replica")
        self.sentinel_port = free_port()
        self._sentinel: subprocess.Popen[bytes] | None = None

    @property
    def sentinel_address(self) -> str:
        return f"127.0.0.1:{self.sentinel_port}"

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.sentinel_port, socket_timeout=2)

    def master_port(self) -> int:
        """The port of the master the sentinel names now."""
        with self.sentinel_client() as client:
            _host, port = client.sentinel_get_master_addr_by_name(self.master_name)
        return int(port)

    def start(self) -> RedisSentinelGroup:
        self.master.start()
        self.replica.extra_args = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        _wait("the replica's first sync", lambda: self._link_up(self.replica.port))
        config = self.workdir / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.master_name} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {self.master_name} 5000\n")
        log = open(self.workdir / "sentinel.log", "ab")  # noqa: SIM115 (kept by Popen)
        self._sentinel = subprocess.Popen(
            [self.master.binary, str(config), "--sentinel"], stdout=log, stderr=log,
            stdin=subprocess.DEVNULL)
        _wait("the sentinel answering", lambda: _answers_ping("127.0.0.1", self.sentinel_port))
        _wait("the sentinel seeing the replica", self._sentinel_knows_replica)
        return self

    def _link_up(self, port: int) -> bool:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    def _sentinel_knows_replica(self) -> bool:
        with self.sentinel_client() as client:
            replicas = client.sentinel_slaves(self.master_name)
        return any(not replica.get("is_sdown") and not replica.get("is_disconnected")
                   for replica in replicas)

    def fail_over(self) -> int:
        """Stop the master (an outage) and wait until the sentinel names the replica; its port."""
        self.master.stop()
        _wait("the failover", lambda: self.master_port() == self.replica.port)
        _wait("the replica's promotion", lambda: self._role(self.replica.port) == "master")
        return self.replica.port

    def _role(self, port: int) -> str:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
            return str(client.info("replication").get("role"))

    def stop(self) -> None:
        if self._sentinel is not None:
            self._sentinel.terminate()
            self._sentinel.wait(10)
            self._sentinel = None
        self.replica.stop()
        self.master.stop()
