"""Machine-ID leases: a held ID refuses a second process naming the holder, `auto` leases the
first free ID of the service's range, a lease that cannot be renewed stops new media (503 with
Retry-After) until it can, and `--workers N` runs N processes with N leased IDs on one port."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from shared.ids.machine_id import MachineIdError, resolve_machine_id
from shared.version import mmr_version
from tests.cluster.conftest import LEASE_SECONDS, Start, WriteConfig, machine_id, upload
from tests.infra.private_redis import PrivateRedis
from tests.infra.processes import start_mmr


def test_a_second_process_with_a_held_machine_id_refuses_naming_the_holder(
    write_config: WriteConfig, start: Start
) -> None:
    config = write_config()
    holder = start("upload-a", "upload", config, "7")
    refused = start("upload-b", "upload", config, "7", wait=False)
    assert refused.wait_exit() != 0
    lines = [line for line in refused.stderr().splitlines() if line.strip()]
    assert "Traceback" not in refused.stderr()
    (line,) = [line for line in lines if line.startswith("mmr: ")]
    assert "MACHINE_ID 7 is held by a live process" in line
    for part in (f"host {socket.gethostname()}", f"pid {holder.process.pid}", "service upload",
                 f"version {mmr_version()}"):
        assert part in line, line
    assert machine_id(holder) == 7  # the holder is untouched


def test_an_id_freed_by_a_clean_stop_is_free_at_once(write_config: WriteConfig, start: Start) -> None:
    config = write_config()
    start("first", "download", config, "9").stop()
    assert machine_id(start("second", "download", config, "9")) == 9


@pytest.mark.parametrize("value", ["٣", "²", "abc", "1٣"])
def test_non_ascii_digits_are_refused_like_any_non_number(value: str) -> None:
    with pytest.raises(MachineIdError, match="MACHINE_ID must be an integer from 0 to 1023"):
        resolve_machine_id("upload", env={"MACHINE_ID": value})


def test_auto_is_for_pools_only_and_never_zero() -> None:
    assert resolve_machine_id("upload", env={"MACHINE_ID": "auto"}) is None
    for service in ("admin", "embedded"):
        with pytest.raises(MachineIdError, match="never handed out automatically"):
            resolve_machine_id(service, env={"MACHINE_ID": "auto"})


def test_auto_leases_the_first_free_id_of_each_services_range(
    write_config: WriteConfig, start: Start
) -> None:
    config = write_config()
    first, second = start("up-1", "upload", config), start("up-2", "upload", config)
    download = start("down-1", "download", config)
    thumbnail = start("thumb-1", "thumbnail", config)
    assert [machine_id(p) for p in (first, second, download, thumbnail)] == [16, 17, 128, 256]
    first.stop()
    assert machine_id(start("up-3", "upload", config)) == 16  # the freed one, first again


def test_a_lapsed_lease_stops_new_media_until_redis_is_back(
    tmp_path: Path, write_config: WriteConfig, start: Start
) -> None:
    with PrivateRedis(tmp_path / "redis") as redis:
        config = write_config(redis=redis.url)
        node = start("upload", "upload", config, "5")
        assert upload(node, b"before the outage").status_code == 200
        redis.stop()
        time.sleep(LEASE_SECONDS + 0.5)
        refused = upload(node, b"during the outage")
        assert refused.status_code == 503, refused.text
        assert refused.json()["errcode"] == "M_UNKNOWN"
        assert "MACHINE_ID 5" in refused.json()["error"]
        assert int(refused.headers["Retry-After"]) >= 1
        redis.start()  # same port, empty: the heartbeat claims the ID again by itself
        deadline = time.monotonic() + 10
        while (answer := upload(node, b"after the outage")).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        assert "lease (re)taken: minting again" in node.stderr()


def test_workers_run_n_processes_on_one_port_each_with_its_own_id(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    config = write_config()
    pool = start_mmr("pool", ["serve", "download", "--config", str(config), "--workers", "3"],
                     tmp_path / "logs", env={"MACHINE_ID": "auto"})
    try:
        pool.wait_healthy()
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while len(seen) < 3 and time.monotonic() < deadline:
            # A new connection each time, so the kernel may hand it to any worker.
            try:
                seen.add(httpx.get(pool.url + "/healthz", timeout=5).json()["machine_id"])
            except httpx.HTTPError:
                time.sleep(0.1)
        assert seen == {128, 129, 130}
        workers = [int(pid) for pid in os.popen(f"pgrep -P {pool.process.pid}").read().split()]
        assert len(workers) == 3
    finally:
        assert pool.stop(signal.SIGTERM) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path, write_config: WriteConfig) -> None:
    """SIGKILL leaves the supervisor no chance to forward anything: the kernel stops its workers."""
    config = write_config()
    pool = start_mmr("pool", ["serve", "download", "--config", str(config), "--workers", "2"],
                     tmp_path / "logs", env={"MACHINE_ID": "auto"})
    try:
        pool.wait_healthy()
        workers: list[int] = []
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [int(pid) for pid in os.popen(f"pgrep -P {pool.process.pid}").read().split()]
            time.sleep(0.1)
        assert len(workers) == 2
    finally:
        pool.process.kill()
        pool.process.wait()
    deadline = time.monotonic() + 30
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive.discard(pid)
        time.sleep(0.1)
    assert not alive, f"workers {sorted(alive)} outlived their supervisor"


def test_workers_need_auto_ids(tmp_path: Path, write_config: WriteConfig) -> None:
    config = write_config()
    pool = start_mmr("pool", ["serve", "upload", "--config", str(config), "--workers", "2"],
                     tmp_path / "logs", env={"MACHINE_ID": "20"})
    assert pool.wait_exit() == 2
    assert "mmr: --workers 2 needs MACHINE_ID=auto" in pool.stderr()
