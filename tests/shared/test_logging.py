"""Logs name the service, machine and request; `repo.logDirectory` adds a file per process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import RepoConfig
from shared.logging import setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_log_directory_gets_one_file_per_service_and_machine(tmp_path: Path) -> None:
    setup_logging("upload", 7, RepoConfig(logDirectory=str(tmp_path / "logs")))
    logging.getLogger("mmr.test").warning("hello from the test")
    for handler in logging.getLogger().handlers:
        handler.flush()
    line = (tmp_path / "logs" / "mmr-upload-7.log").read_text()
    assert "hello from the test" in line
    assert "[upload/7 " in line


def test_json_logs_and_colours(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("thumbnail", 3, RepoConfig(jsonLogs=True))
    logging.getLogger("mmr.test").warning("structured")
    assert '"service": "thumbnail"' in capsys.readouterr().err
    setup_logging("thumbnail", 3, RepoConfig(logColors=True))
    logging.getLogger("mmr.test").error("coloured")
    assert "\x1b[31m" in capsys.readouterr().err


def test_a_json_line_carries_machine_service_request_and_homeserver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from shared.web.middleware import homeserver_var, request_id_var

    setup_logging("download", 130, RepoConfig(jsonLogs=True))
    request, homeserver = request_id_var.set("req-42"), homeserver_var.set("example.org")
    try:
        logging.getLogger("mmr.test").warning("served")
    finally:
        request_id_var.reset(request)
        homeserver_var.reset(homeserver)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["service"] == "download" and line["machine_id"] == 130
    assert line["request_id"] == "req-42" and line["homeserver"] == "example.org"
    assert line["msg"] == "served" and line["level"] == "WARNING"
