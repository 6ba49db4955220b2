"""PostgreSQL and Redis for a dev cluster: the machine's own when they answer on their usual
ports (as the test suite uses them), else private ones started in the cluster's folder.

What this starts is described by a `Started` record, so `mmr cluster down` stops exactly that.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from mmr.devcluster.apt import apt_install
from mmr.devcluster.procs import free_port, process_start_time, stop_pid

MACHINE_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_REDIS = ("127.0.0.1", 6379)
REDIS_DB = 8
"""Redis database of dev clusters on the machine's Redis (the test suite uses 9)."""
START_TIMEOUT_SECONDS = 30.0


@dataclass
class Started:
    """A server this cluster started: `kind` says how `down` stops it."""

    kind: str  # "pid" (signal it) or "pg_ctl" (pg_ctl stop on `data_dir`)
    name: str
    pid: int = 0
    data_dir: str = ""
    signal: str = "SIGTERM"
    # The kernel's start time of `pid`: a pid reused by another process is never signalled.
    start_time: str = ""

    @classmethod
    def process(cls, name: str, pid: int, signal: str = "SIGTERM") -> Started:
        return cls("pid", name, pid=pid, signal=signal, start_time=process_start_time(pid) or "")


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _find_pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [
        int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")])
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _pg_bin() -> Path:
    """The newest PostgreSQL's binaries; installed with apt-get when missing (as root)."""
    found = _find_pg_bin()
    if found is None and apt_install("postgresql"):
        found = _find_pg_bin()
    if found is None:
        raise RuntimeError("no PostgreSQL server answers on 127.0.0.1:5432 and no PostgreSQL "
                           "binaries are installed to start one (`apt-get install postgresql`)")
    return found


def _as_postgres_user() -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _postgres_folder(folder: Path) -> Path:
    """Where a private cluster's files go. As root, the server runs as `postgres`, who often
    cannot enter the cluster's folder (under /root, or a private temp dir): use one in /tmp."""
    if os.geteuid() != 0:
        return folder
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:10]
    private = Path(tempfile.gettempdir()) / f"mmr-cluster-postgres-{digest}"
    private.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(private, "postgres")
    return private


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")


def start_private_postgres(folder: Path) -> tuple[str, Started]:
    """initdb (trust auth, loopback only) and start it on a free port."""
    binaries, port = _pg_bin(), free_port()
    home = _postgres_folder(folder)
    home.mkdir(parents=True, exist_ok=True)
    data = home / "data"
    if not data.exists():
        _run([*_as_postgres_user(), str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
              "--auth=trust"])
    _run([*_as_postgres_user(), str(binaries / "pg_ctl"), "-D", str(data), "-l",
          str(home / "postgres.log"), "-w", "-o",
          f"-c listen_addresses=127.0.0.1 -p {port} -k {home}", "start"])
    return (f"postgresql://postgres@127.0.0.1:{port}/postgres",
            Started("pg_ctl", "postgresql", data_dir=str(data)))


def ensure_postgres(folder: Path, given: str | None) -> tuple[str, Started | None]:
    """An admin URL of a PostgreSQL server: `given`, the machine's, or a private one."""
    if given:
        return given, None
    if _postgres_answers(MACHINE_POSTGRES):
        return MACHINE_POSTGRES, None
    return start_private_postgres(folder)


def create_database(admin_url: str, name: str) -> str:
    """Database `name` on that server (created when missing); its `postgres://` URL."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgres://", 1)


def drop_database(url: str) -> None:
    """Drop the database `url` names (connections to it are ended first)."""
    base, name = url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis_answers(host: str, port: int) -> bool:
    # A raw RESP PING: a password-protected server (-NOAUTH) counts as "no".
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis(folder: Path, given: str | None) -> tuple[str, Started | None]:
    """A Redis URL: `given`, the machine's, or a private `redis-server` (no persistence)."""
    if given:
        return given, None
    if _redis_answers(*MACHINE_REDIS):
        return f"redis://{MACHINE_REDIS[0]}:{MACHINE_REDIS[1]}/{REDIS_DB}", None
    binary = shutil.which("redis-server")
    if binary is None and apt_install("redis-server"):
        binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no Redis answers on 127.0.0.1:6379 and `redis-server` is not "
                           "installed (`apt-get install redis-server`)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(folder / "redis.log", "wb") as log:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--daemonize", "no", "--dir", str(folder)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _redis_answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                process.kill()
            raise RuntimeError(f"redis-server did not start; see {folder / 'redis.log'}")
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", Started.process("redis", process.pid)


def stop_started(started: Started, timeout: float = 30.0) -> bool:
    """Stop what a `Started` describes; False when it was no longer running (or its pid now
    belongs to another process)."""
    if started.kind == "pg_ctl":
        done = subprocess.run([*_as_postgres_user(), str(_pg_bin() / "pg_ctl"), "-D",
                               started.data_dir, "-m", "fast", "-w", "stop"],
                              check=False, capture_output=True)
        return done.returncode == 0
    if process_start_time(started.pid) != started.start_time:
        return False
    return stop_pid(started.pid, signal.Signals[started.signal], timeout)
