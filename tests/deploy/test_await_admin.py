"""`mmr cluster await-admin`, the pools' init container: machine 0 runs a release first."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from mmr.cli import app
from shared.version import mmr_version
from tests.infra.fixture_web import FixtureWebServer, page


def _version(web: FixtureWebServer, version: str) -> None:
    web.routes["/_matrix/media/version"] = page(
        json.dumps({"Version": version, "GitCommit": "", "unstable_features": {}}), "application/json")


def test_returns_once_machine_zero_serves_this_release() -> None:
    with FixtureWebServer() as web:
        _version(web, mmr_version())
        result = CliRunner().invoke(app, ["cluster", "await-admin", "--url", web.url(""),
                                          "--timeout", "10"])
    assert result.exit_code == 0, result.output
    assert f"machine 0 runs {mmr_version()}" in result.output


def test_waits_while_machine_zero_runs_another_release_then_starts_anyway() -> None:
    with FixtureWebServer() as web:
        _version(web, "0.0.1-old")
        began = time.monotonic()
        result = CliRunner().invoke(app, ["cluster", "await-admin", "--url", web.url(""),
                                          "--timeout", "1"])
        waited = time.monotonic() - began
        assert web.hits("/_matrix/media/version") >= 1
    assert result.exit_code == 0
    assert waited >= 1
    assert "0.0.1-old" in result.output and "starting anyway" in result.output
