"""SIGHUP also flushes the token cache: a token check cached before the reload is asked of the
homeserver again (the reloaded file may have changed admins, appservices or the cache time)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import yaml

from tests.conftest import SERVER_NAME, embedded_raw_config
from tests.infra.fixture_web import FixtureWebServer, page
from tests.infra.processes import start_mmr

WHOAMI = "/_matrix/client/v3/account/whoami"
CONFIG = "/_matrix/client/v1/media/config"


def _config_answer(url: str) -> int:
    return httpx.get(url + CONFIG, timeout=10, headers={
        "Authorization": "Bearer alice-token", "Host": SERVER_NAME}).status_code


def test_a_reload_makes_cached_token_checks_go_to_the_homeserver_again(tmp_path: Path) -> None:
    with FixtureWebServer() as homeserver:
        homeserver.routes[WHOAMI] = page(json.dumps({"user_id": f"@alice:{SERVER_NAME}"}),
                                         "application/json")
        raw = embedded_raw_config(tmp_path, accessTokens={"maxCacheTimeSeconds": 600})
        raw["homeservers"] = [{"name": SERVER_NAME, "csApi": homeserver.url("")}]
        path = tmp_path / "media-repo.yaml"
        path.write_text(yaml.safe_dump(raw))
        process = start_mmr("reload", ["serve", "--config", str(path)], tmp_path / "logs")
        try:
            process.wait_for_stdout("listening")
            assert _config_answer(process.url) == 200
            assert _config_answer(process.url) == 200
            assert homeserver.hits(WHOAMI) == 1  # the second answer came from the cache
            process.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while "SIGHUP: reloaded" not in process.stderr():
                assert time.monotonic() < deadline, process.stderr()
                time.sleep(0.1)
            assert _config_answer(process.url) == 200
            assert homeserver.hits(WHOAMI) == 2
            assert _config_answer(process.url) == 200
            assert homeserver.hits(WHOAMI) == 2  # cached again from then on
        finally:
            process.stop(signal.SIGINT)
