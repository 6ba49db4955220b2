"""Stopping a process drains it: on SIGTERM (what Kubernetes sends after preStop) `mmr serve`
stops taking connections but lets an upload in flight finish, for up to --drain-seconds."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.infra.processes import start_mmr

CHUNKS = 20
CHUNK = b"x" * 16384


def _slow_body(sent: threading.Event) -> Iterator[bytes]:
    for i in range(CHUNKS):
        if i == 2:
            sent.set()
        yield CHUNK
        time.sleep(0.1)


def test_sigterm_lets_an_upload_in_flight_finish(tmp_path: Path) -> None:
    process = start_mmr("drain", ["serve", "--data", str(tmp_path / "data"), "--drain-seconds",
                                  "30"], tmp_path / "logs", cwd=tmp_path)
    try:
        process.wait_healthy()
        token = process.wait_for_stdout("token:").split("token:", 1)[1].strip()
        started = threading.Event()
        result: dict[str, httpx.Response] = {}

        def upload() -> None:
            result["response"] = httpx.post(
                process.url + "/_matrix/media/v3/upload", content=_slow_body(started),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
                timeout=60)

        thread = threading.Thread(target=upload)
        thread.start()
        assert started.wait(10)
        process.process.send_signal(signal.SIGTERM)
        thread.join(60)
        response = result["response"]
        assert response.status_code == 200, response.text
        assert response.json()["content_uri"].startswith("mxc://")
        # uvicorn re-raises the signal once drained: the exit is "terminated by SIGTERM".
        assert process.wait_exit(30) in (0, -signal.SIGTERM)
    finally:
        process.stop()
