"""A real Redis server for tests: `ensure_redis()` returns its URL.

Resolution order:

1. `MMR_TEST_REDIS_URL`, used as given (and not flushed: it is the caller's server).
2. A Redis already answering PING on 127.0.0.1:6379: database 9 of it, FLUSHDB'd once per run so
   leftovers from an earlier run cannot leak into this one.
3. A private `redis-server` started on a free port (no persistence), stopped at interpreter exit.

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
_START_TIMEOUT_SECONDS = 10.0

_url: str | None = None
_process: subprocess.Popen[bytes] | None = None


def ensure_redis() -> str:
    """The URL of a Redis server for tests; the same URL for every call in a process."""
    global _url
    if _url is None:
        _url = _resolve()
    return _url


def _resolve() -> str:
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env
    if _answers_ping(LOCAL_HOST, LOCAL_PORT):
        url = f"redis://{LOCAL_HOST}:{LOCAL_PORT}/{TEST_DB}"
        _flush(url)
        return url
    port = _start_server()
    return f"redis://{LOCAL_HOST}:{port}/{TEST_DB}"


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
