"""`mmr serve SERVICE --workers N` passes SIGHUP on: every worker reloads the config file."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import yaml

from tests.cluster.conftest import WriteConfig
from tests.infra.processes import start_mmr


def _reloads(stderr: str) -> set[str]:
    """The `service/machine` of each process that logged a reload (the log line's prefix)."""
    return set(re.findall(r"\[(download/\d+) [^\]]*\] [\w.]+: SIGHUP: reloaded", stderr))


def test_sighup_to_the_supervisor_reloads_every_worker(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    path = write_config(downloads={"maxBytes": 1000})
    pool = start_mmr("pool", ["serve", "download", "--config", str(path), "--workers", "2"],
                     tmp_path / "logs", env={"MACHINE_ID": "auto"})
    try:
        pool.wait_healthy()
        raw = yaml.safe_load(path.read_text())
        raw["downloads"]["maxBytes"] = 5000
        path.write_text(yaml.safe_dump(raw))
        # Both workers must be serving (their handlers installed) before the signal.
        deadline = time.monotonic() + 60
        while pool.stderr().count("Application startup complete") < 2:
            assert time.monotonic() < deadline, pool.stderr()
            time.sleep(0.2)
        pool.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while len(_reloads(pool.stderr())) < 2:
            assert time.monotonic() < deadline, pool.stderr()
            time.sleep(0.2)
        assert "applied downloads.maxBytes" in pool.stderr()
        assert pool.process.poll() is None  # the supervisor itself carries on
    finally:
        assert pool.stop(signal.SIGTERM) == 0
