"""Machine 0 failover: a second machine 0 is a hot standby (serves the admin API, runs no
background task) until the holder's lease lapses, then takes over within one lease period; a
machine 0 paused past its lease stands down when resumed. Never two machine 0s at once."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx

from tests.cluster.conftest import LEASE_SECONDS, Start, WriteConfig, cluster_view
from tests.infra.processes import MmrProcess

SLACK_SECONDS = 3.0  # a loaded 2-core machine


def role(process: MmrProcess, timeout: float = 2.0) -> str | None:
    """This process's own role, or None when it does not answer (paused, dead)."""
    try:
        view: dict[str, Any] = cluster_view(process, timeout=timeout)
    except (httpx.HTTPError, AssertionError):
        return None
    return str(view["this_process"]["role"])


def wait_role(process: MmrProcess, wanted: str, within: float) -> float:
    started = time.monotonic()
    while (current := role(process)) != wanted:
        assert time.monotonic() - started < within, f"{process.name} is {current}, not {wanted}"
        time.sleep(0.1)
    return time.monotonic() - started


def holder_and_standby(write_config: WriteConfig, start: Start) -> tuple[MmrProcess, MmrProcess]:
    config = write_config()
    holder = start("admin-a", "admin", config, None)
    standby = start("admin-b", "admin", config, None)
    assert role(holder) == "holder"
    assert role(standby) == "standby"
    return holder, standby


def test_the_standby_serves_the_admin_api_but_runs_no_task(
    write_config: WriteConfig, start: Start
) -> None:
    holder, standby = holder_and_standby(write_config, start)
    view = cluster_view(standby)
    assert [(m["machine_id"], m["role"]) for m in view["members"]] == [(0, "holder"), (0, "standby")]
    assert "starting task runner" in holder.stderr()
    assert "starting task runner" not in standby.stderr()
    assert "hot standby" in standby.stderr()


def test_the_standby_takes_over_within_a_lease_when_the_holder_is_killed(
    write_config: WriteConfig, start: Start
) -> None:
    holder, standby = holder_and_standby(write_config, start)
    holder.process.send_signal(signal.SIGKILL)
    holder.process.wait()
    took = wait_role(standby, "holder", within=LEASE_SECONDS + SLACK_SECONDS)
    assert took <= LEASE_SECONDS + SLACK_SECONDS
    deadline = time.monotonic() + 10
    while "starting task runner" not in standby.stderr():
        assert time.monotonic() < deadline, standby.stderr()
        time.sleep(0.1)


def test_a_paused_holder_stands_down_when_resumed_and_never_overlaps(
    write_config: WriteConfig, start: Start
) -> None:
    holder, standby = holder_and_standby(write_config, start)
    os.kill(holder.process.pid, signal.SIGSTOP)
    try:
        wait_role(standby, "holder", within=LEASE_SECONDS + SLACK_SECONDS)
    finally:
        os.kill(holder.process.pid, signal.SIGCONT)
    # From the first answer after resuming, the old holder is a standby; sample both for a while.
    samples = []
    deadline = time.monotonic() + 2 * LEASE_SECONDS
    while time.monotonic() < deadline:
        samples.append((role(holder, timeout=5), role(standby, timeout=5)))
    answered = [pair for pair in samples if pair[0] is not None]
    assert answered, "the resumed process never answered"
    assert all(pair == ("standby", "holder") for pair in answered), samples
    assert "machine 0 lease lost: stopped task runner" in holder.stderr()
