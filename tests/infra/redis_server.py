"""A real Redis server for tests: `ensure_redis()` returns its URL.

Resolution order:

1. `MMR_TEST_REDIS_URL`, used as given (and not flushed: it is the caller's server). Under
   pytest-xdist it is a comma-separated list with one URL per worker (`gw0` takes the first);
   too few URLs is an error, since two workers on one database would flush and count each
   other's keys.
2. A Redis already answering PING on 127.0.0.1:6379: database 9 of it (9 + N for xdist worker
   `gwN`), FLUSHDB'd once per run so leftovers from an earlier run cannot leak into this one.
3. A private `redis-server` started on a free port (no persistence), stopped at interpreter exit
   (one per xdist worker: each process starts its own).

There is no skip: if none of these works the tests fail with an explanation, because tests that
silently stop running Redis would stop testing the cluster code path.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import time

import redis

ENV_VAR = "MMR_TEST_REDIS_URL"
LOCAL_HOST = "127.0.0.1"
LOCAL_PORT = 6379
TEST_DB = 9
_DATABASES = 16
"""Redis's default `databases`: workers past 16 - TEST_DB cannot have a database of their own."""
_START_TIMEOUT_SECONDS = 10.0

_url: str | None = None
_process: subprocess.Popen[bytes] | None = None


def ensure_redis() -> str:
    """The URL of a Redis server for tests; the same URL for every call in a process."""
    global _url
    if _url is None:
        _url = _resolve()
    return _url


def xdist_worker_index() -> int:
    """N for pytest-xdist worker `gwN`, 0 in a run without workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else 0


def _resolve() -> str:
    worker = xdist_worker_index()
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _url_for_worker(from_env, worker)
    if _answers_ping(LOCAL_HOST, LOCAL_PORT):
        if TEST_DB + worker >= _DATABASES:
            raise RuntimeError(f"xdist worker gw{worker} has no Redis database of its own on "
                               f"{LOCAL_HOST}:{LOCAL_PORT}: use fewer workers or set {ENV_VAR}")
        url = f"redis://{LOCAL_HOST}:{LOCAL_PORT}/{TEST_DB + worker}"
        _flush(url)
        return url
    port = _start_server()
    return f"redis://{LOCAL_HOST}:{port}/{TEST_DB}"


def _url_for_worker(from_env: str, worker: int) -> str:
    urls = [url.strip() for url in from_env.split(",") if url.strip()]
    if worker >= len(urls):
        raise RuntimeError(
            f"{ENV_VAR} names {len(urls)} Redis URL(s) but this is xdist worker gw{worker}: give "
            "one URL (its own database) per worker, comma-separated, or run without -n"
        )
    return urls[worker]


def _answers_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    # A raw RESP PING: no client setup, and a password-protected server (-NOAUTH) counts as "no".
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server() -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "Redis tests need a Redis server: nothing answers PING on "
            f"{LOCAL_HOST}:{LOCAL_PORT}, {ENV_VAR} is not set, and there is no `redis-server` "
            "on PATH to start one. Install it (e.g. `apt-get install redis-server`) or set "
            f"{ENV_VAR}=redis://host:port/db."
        )
    global _process
    port = _free_port()
    # --daemonize no keeps it our child so we can stop it; no persistence: it is scratch.
    _process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            LOCAL_HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    atexit.register(stop_redis)
    _wait_until_up(_process, port)
    return port


def _wait_until_up(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"redis-server exited with {process.returncode}: {stderr}")
        if _answers_ping(LOCAL_HOST, port):
            return
        time.sleep(0.05)
    stop_redis()
    raise RuntimeError(
        f"redis-server did not answer PING on port {port} within {_START_TIMEOUT_SECONDS}s"
    )


def stop_redis() -> None:
    """Stop the redis-server this module started, if any."""
    global _process
    if _process is None:
        return
    process, _process = _process, None
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
