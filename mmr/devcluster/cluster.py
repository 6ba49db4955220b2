"""`mmr cluster up` / `down`: a real cluster on one machine, in one folder.

Up: PostgreSQL and Redis (the machine's, or private ones), SeaweedFS S3, a generated config,
machine 0 (admin) and every pool's processes with MACHINE_IDs from the pool's range (the same
ranges as deploy/k8s), then nginx from deploy/nginx in front. Everything started is written to
`<folder>/cluster.json` as soon as it runs, so `down` stops exactly that, even after a failed up.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from mmr.deploy.nginx_conf import render_mmr_conf
from mmr.devcluster.backing import (
    Started,
    create_database,
    drop_database,
    ensure_postgres,
    ensure_redis,
    stop_started,
)
from mmr.devcluster.nginx import start_nginx
from mmr.devcluster.procs import free_ports
from mmr.devcluster.seaweedfs import S3Server, start_seaweedfs

# MACHINE_ID ranges per pool: deploy/k8s uses the same (tests/deploy checks they agree).
POOL_RANGES: dict[str, range] = {
    "admin": range(0, 1),
    "upload": range(16, 128),
    "download": range(128, 256),
    "thumbnail": range(256, 512),
    "preview": range(512, 768),
}
DEFAULT_COUNTS = {"upload": 2, "download": 2, "thumbnail": 2, "preview": 1}
STATE_FILE = "cluster.json"
BUCKET = "mmr-media"
HEALTHY_TIMEOUT_SECONDS = 240.0
ACCESS_LOG_FORMAT = ('{"ts":"$time_iso8601","service":"nginx","request_id":"$mmr_request_id",'
                     '"method":"$request_method","uri":"$request_uri","status":$status,'
                     '"upstream":"$upstream_addr","seconds":$request_time}')


class ClusterError(Exception):
    """The cluster cannot be brought up or down; the message says why."""


@dataclass
class Member:
    """One mmr process of the cluster."""

    service: str
    machine_id: int
    port: int
    metrics_port: int

    @property
    def name(self) -> str:
        return f"{self.service}-{self.machine_id}"


@dataclass
class ClusterState:
    """What `up` started and how to reach it; saved as `<folder>/cluster.json`."""

    folder: str
    url: str = ""
    token: str = ""
    logs: str = ""
    members: list[Member] = field(default_factory=list)
    started: list[Started] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.folder) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, folder: Path) -> ClusterState | None:
        path = folder / STATE_FILE
        if not path.exists():
            return None
        raw: dict[str, Any] = json.loads(path.read_text())
        return cls(folder=raw["folder"], url=raw["url"], token=raw["token"], logs=raw["logs"],
                   members=[Member(**m) for m in raw["members"]],
                   started=[Started(**s) for s in raw["started"]])


def plan_members(counts: Mapping[str, int]) -> list[Member]:
    """Machine 0 (admin), then each pool's processes numbered from the start of its range."""
    placed = [("admin", 0)]
    for service, count in counts.items():
        ids = POOL_RANGES[service]
        if not 1 <= count <= len(ids):
            raise ClusterError(f"--{service} must be 1..{len(ids)} (its MACHINE_ID range is "
                               f"{ids.start}-{ids.stop - 1}), got {count}")
        placed += [(service, ids.start + i) for i in range(count)]
    # Every HTTP and metrics port of the cluster distinct: one process's metrics listener on
    # another's HTTP port would answer its health checks and its traffic.
    ports = iter(free_ports(2 * len(placed)))
    return [Member(service, machine_id, next(ports), next(ports)) for service, machine_id in placed]


def _mmr(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmr", *args]


def _config(folder: Path, database: str, redis: str, s3: S3Server, token: str,
            server_name: str) -> dict[str, Any]:
    return {
        "repo": {"bindAddress": "127.0.0.1", "tempPath": str(folder / "tmp"),
                 "logDirectory": str(folder / "logs"), "trustedProxies": ["127.0.0.1/32"],
                 # A development cluster is for looking at: a line per request.
                 "accessLog": True},
        "database": {"postgres": database},
        "homeservers": [{"name": server_name, "csApi": ""}],
        "sharedSecretAuth": {"enabled": True, "token": token},
        "datastores": [{"id": "s3", "type": "s3", "forKinds": ["all"], "opts": {
            "endpoint": s3.endpoint, "bucketName": BUCKET, "accessKeyId": s3.access_key,
            "accessSecret": s3.secret_key, "region": s3.region, "ssl": False, "pathStyle": True}}],
        "redis": {"enabled": True, "url": redis},
        # Each process gets its own port through MMR_METRICS_PORT.
        "metrics": {"enabled": True, "bindAddress": "127.0.0.1"},
    }


def _write_config(folder: Path, raw: dict[str, Any], extra: Path | None) -> Path:
    """A config folder: the generated file, then the operator's `extra` merged over it."""
    config_dir = folder / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    for old in config_dir.glob("*.yaml"):
        old.unlink()
    generated = config_dir / "00-cluster.yaml"
    generated.touch(mode=0o600)  # it holds the admin token and the S3 secret
    generated.write_text(yaml.safe_dump(raw, sort_keys=False))
    if extra is not None:
        (config_dir / "50-extra.yaml").write_text(extra.read_text())
    return config_dir


def _start_member(member: Member, config_dir: Path, logs: Path) -> Started:
    env = {**os.environ, "MACHINE_ID": str(member.machine_id),
           "MMR_METRICS_PORT": str(member.metrics_port)}
    env.pop("MMR_CONFIG", None)
    with open(logs / f"{member.name}.out", "wb") as out:
        process = subprocess.Popen(
            _mmr("serve", member.service, "--config", str(config_dir), "--host", "127.0.0.1",
                 "--port", str(member.port)),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    return Started.process(member.name, process.pid)


def _wait_healthy(members: list[Member], started: list[Started], logs: Path) -> None:
    from mmr.devcluster.procs import pid_alive

    by_name = {s.name: s for s in started}
    waiting = list(members)
    deadline = time.monotonic() + HEALTHY_TIMEOUT_SECONDS
    while waiting:
        member = waiting[0]
        if not pid_alive(by_name[member.name].pid):
            tail = (logs / f"{member.name}.out").read_text(errors="replace")[-2000:]
            raise ClusterError(f"{member.name} exited during start:\n{tail}")
        if answers_as(member):
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            raise ClusterError(f"{member.name} not healthy in {HEALTHY_TIMEOUT_SECONDS:.0f} s; "
                               f"see {logs / (member.name + '.out')}")
        time.sleep(0.1)


def answers_as(member: Member) -> bool:
    """Whether `member`'s port answers `/healthz` as that member; something else answering
    there (a clash with another program's port) is an error, not a wait."""
    try:
        answer = httpx.get(f"http://127.0.0.1:{member.port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    if answer.status_code != 200:
        return False
    try:
        health = answer.json()
    except ValueError:
        health = None
    if not isinstance(health, dict) or (health.get("service"), health.get("machine_id")) != (
            member.service, member.machine_id):
        raise ClusterError(f"port {member.port} of {member.name} is answered by something else "
                           f"({answer.text[:80]!r}); run `mmr cluster up` again")
    return True


def restart_member(state: ClusterState, name: str) -> int:
    """Stop one mmr process of a running cluster and start it again on the same ports (nginx
    keeps its upstream); returns once it is healthy, with its new pid."""
    member = next(m for m in state.members if m.name == name)
    old = next(s for s in state.started if s.name == name)
    stop_started(old)
    folder = Path(state.folder)
    started = _start_member(member, folder / "config", folder / "logs")
    state.started[state.started.index(old)] = started
    state.save()
    _wait_healthy([member], state.started, folder / "logs")
    return started.pid


@dataclass
class UpOptions:
    folder: Path
    counts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_COUNTS))
    port: int = 8080
    server_name: str = "localhost"
    postgres: str | None = None
    redis: str | None = None
    extra_config: Path | None = None


def up(options: UpOptions) -> ClusterState:
    """Start the cluster; on any failure stop what was started and raise `ClusterError`."""
    plan_members(options.counts)  # bad counts fail before anything starts
    folder = options.folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    previous = ClusterState.load(folder)
    if previous is not None and any(_running(s) for s in previous.started):
        raise ClusterError(f"a cluster is already up in {folder}: `mmr cluster down --dir {folder}`")
    state = ClusterState(folder=str(folder), logs=str(folder / "logs"))
    try:
        _bring_up(options, folder, state)
    except BaseException:
        down(folder)
        raise
    return state


def _running(started: Started) -> bool:
    from mmr.devcluster.procs import process_start_time

    if started.kind == "pg_ctl":
        return (Path(started.data_dir) / "postmaster.pid").exists()
    return process_start_time(started.pid) == started.start_time


def _record(state: ClusterState, started: Started | None) -> None:
    if started is not None:
        state.started.append(started)
        state.save()


def _start_backing(options: UpOptions, folder: Path, state: ClusterState) -> tuple[str, str, S3Server]:
    """PostgreSQL (a database named after the folder), Redis and S3 (with the media bucket)."""
    pg_admin, started = ensure_postgres(folder / "postgres", options.postgres)
    _record(state, started)
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:10]
    database = create_database(pg_admin, f"mmr_cluster_{digest}")
    redis, started = ensure_redis(folder / "redis", options.redis)
    _record(state, started)
    s3 = start_seaweedfs(folder / "seaweedfs", detach=True)
    if s3.process is not None:
        _record(state, Started.process("seaweedfs", s3.process.pid))
    if BUCKET not in {b["Name"] for b in s3.client().list_buckets().get("Buckets", [])}:
        s3.client().create_bucket(Bucket=BUCKET)
    return database, redis, s3


def _start_nginx(options: UpOptions, folder: Path, state: ClusterState, max_bytes: int) -> None:
    """nginx in front, rendered from deploy/nginx with every process of each pool."""
    upstreams = {service: [f"127.0.0.1:{m.port}" for m in state.members if m.service == service]
                 for service in POOL_RANGES}
    # A little over uploads.maxBytes: bigger bodies are refused here, before reaching a pool.
    conf = render_mmr_conf(upstreams, "127.0.0.1:${NGINX_PORT}",
                           max_body_size=str(max_bytes + 1024 * 1024))
    nginx = start_nginx(conf, folder / "nginx", detach=True, log_format=ACCESS_LOG_FORMAT,
                        port=options.port or None)
    _record(state, Started.process("nginx", nginx.process.pid, signal="SIGQUIT"))
    state.url = f"http://{options.server_name}:{nginx.port}"


def _bring_up(options: UpOptions, folder: Path, state: ClusterState) -> None:
    from shared.config import load_config

    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    state.save()
    # Step 1: PostgreSQL, Redis, S3.
    database, redis, s3 = _start_backing(options, folder, state)
    # Step 2: the config (the admin token is kept across ups of one folder).
    token_file = folder / "admin-token"
    if not token_file.exists():
        token_file.touch(mode=0o600)
        token_file.write_text(secrets.token_urlsafe(24))
    state.token = token_file.read_text().strip()
    raw = _config(folder, database, redis, s3, state.token, options.server_name)
    config_dir = _write_config(folder, raw, options.extra_config)
    config = load_config(config_dir)
    # Step 3: machine 0 and the pools, all at once: admin migrates, the pools wait for it.
    state.members = plan_members(options.counts)
    for member in state.members:
        _record(state, _start_member(member, config_dir, logs))
    _wait_healthy(state.members, state.started, logs)
    # Step 4: nginx.
    _start_nginx(options, folder, state, config.uploads.max_bytes)
    state.save()


def down(folder: Path, purge: bool = False) -> list[str]:
    """Stop everything `up` started in `folder`, newest first; the names of what was running.
    `purge` then deletes the cluster's data too: its database, its folder."""
    folder = folder.resolve()
    state = ClusterState.load(folder)
    stopped = [s.name for s in reversed(state.started) if stop_started(s)] if state else []
    (folder / STATE_FILE).unlink(missing_ok=True)
    if purge:
        _purge(folder, state)
    return stopped


def _purge(folder: Path, state: ClusterState | None) -> None:
    import shutil

    private = [s for s in (state.started if state else []) if s.kind == "pg_ctl"]
    generated = folder / "config" / "00-cluster.yaml"
    if private:
        shutil.rmtree(Path(private[0].data_dir).parent, ignore_errors=True)
    elif generated.exists():
        url = yaml.safe_load(generated.read_text())["database"]["postgres"]
        drop_database(url)
    shutil.rmtree(folder, ignore_errors=True)
