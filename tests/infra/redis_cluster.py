"""A Redis Cluster of the test's own on loopback: three masters (`redis-server` in cluster mode,
joined by `redis-cli --cluster create`), each with its own free port and cluster-bus port."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.infra.http_server import free_port
from tests.infra.private_redis import PrivateRedis
from tests.infra.started import StoppedOnFailedStart

_WAIT_SECONDS = 30.0


class RedisClusterGroup(StoppedOnFailedStart):
    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.workdir = workdir
        self.nodes: list[PrivateRedis] = []
        for n in range(masters):
            node = PrivateRedis(workdir / f"node-{n}")
            node.extra_args = ("--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                               "--cluster-config-file", str(node.workdir / "nodes.conf"),
                               "--cluster-node-timeout", "2000")
            self.nodes.append(node)

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    def start(self) -> RedisClusterGroup:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("these tests need `redis-cli` on PATH (apt-get install redis-tools)")
        created = subprocess.run(
            [cli, "--cluster", "create", *self.addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        deadline = time.monotonic() + _WAIT_SECONDS
        while not all(self._state_ok(node.port) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the test's Redis Cluster never reached cluster_state:ok")
            time.sleep(0.1)
        return self

    @staticmethod
    def _state_ok(port: int) -> bool:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
            info = client.execute_command("CLUSTER", "INFO")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
