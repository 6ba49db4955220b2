"""What a new user meets first at the command line: `mmr serve` says it listens only once it
does, a port in use or a mistyped service name is one clear line, `mmr --version`, uvicorn's own
lines in mmr's log format, and SIGHUP reloading what can change at run time.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import httpx
import yaml

from shared.version import mmr_version
from tests.conftest import TEST_SECRET, embedded_raw_config
from tests.infra.processes import run_mmr, start_mmr

LOG_LINE = re.compile(r"^\S+ \S+ (INFO|WARNING|ERROR|DEBUG) \[embedded/0 [^\]]+\] [\w.]+: ")


def test_version() -> None:
    result = run_mmr(["--version"])
    assert (result.returncode, result.stdout.strip()) == (0, f"mmr {mmr_version()}")


def test_an_unknown_service_is_reported_before_config_or_machine_id() -> None:
    result = run_mmr(["serve", "uplaod"], env={"MACHINE_ID": "not-a-number"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mmr: unknown service 'uplaod': choose one of upload, download, thumbnail, preview, admin"]


def test_a_port_in_use_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_mmr(["serve", "--data", str(tmp_path / "data"), "--port", str(port)])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"mmr: port {port} on 127.0.0.1 is already in use"]
    assert "listening" not in result.stdout


def test_listening_is_printed_once_it_serves_and_uvicorn_logs_like_mmr(tmp_path: Path) -> None:
    process = start_mmr("embedded", ["serve", "--data", str(tmp_path / "data")], tmp_path / "logs",
                        cwd=tmp_path)
    try:
        line = process.wait_for_stdout("listening")
        # No retry: by the time the line is out, the server answers.
        assert httpx.get(process.url + "/healthz", timeout=5).status_code == 200
        assert line == f"mmr embedded default listening on http://127.0.0.1:{process.port}"
    finally:
        process.stop(signal.SIGINT)
    lines = [ln for ln in process.stderr().splitlines() if ln.strip()]
    uvicorn_lines = [ln for ln in lines if "uvicorn" in ln]
    assert any("Application startup complete" in ln for ln in uvicorn_lines)
    assert uvicorn_lines and all(LOG_LINE.match(ln) for ln in uvicorn_lines), uvicorn_lines


def _upload(url: str, size: int) -> int:
    return httpx.post(url + "/_matrix/media/v3/upload", content=b"x" * size, timeout=10,
                      headers={"Authorization": f"Bearer {TEST_SECRET}", "Host": "localhost"}
                      ).status_code


def _wait_for(process_stderr: object, needle: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = process_stderr()  # type: ignore[operator]
        if needle in text:
            return str(text)
        time.sleep(0.1)
    raise AssertionError(f"never logged {needle!r}")


def test_sighup_reloads_limits_and_names_what_needs_a_restart(tmp_path: Path) -> None:
    raw = embedded_raw_config(tmp_path, uploads={"maxBytes": 1000})
    path = tmp_path / "media-repo.yaml"
    path.write_text(yaml.safe_dump(raw))
    process = start_mmr("reload", ["serve", "--config", str(path)], tmp_path / "logs")
    try:
        process.wait_for_stdout("listening")
        assert _upload(process.url, 2000) == 413
        raw["uploads"]["maxBytes"] = 5000
        raw["repo"]["bindAddress"] = "0.0.0.0"
        path.write_text(yaml.safe_dump(raw))
        process.process.send_signal(signal.SIGHUP)
        log = _wait_for(process.stderr, "SIGHUP: reloaded")
        assert _upload(process.url, 2000) == 200
        assert "applied uploads.maxBytes" in log
        assert "needs a restart: repo.bindAddress" in _wait_for(process.stderr, "needs a restart")
        # A broken file is refused, naming the key, and the running config stays.
        path.write_text("uploads: {maxByte: 1}\n")
        process.process.send_signal(signal.SIGHUP)
        assert "uploads.maxByte: unknown key" in _wait_for(process.stderr, "keeping the running")
        assert _upload(process.url, 2000) == 200
    finally:
        process.stop(signal.SIGINT)
