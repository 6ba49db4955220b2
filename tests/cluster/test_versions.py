"""Rolling upgrades by X.Y.Z: a process refuses to start beside a machine 0 of another X, or
when it is newer in Y than machine 0; one version source; a changelog entry for each release."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from shared.cluster.identity import ProcessInfo
from shared.cluster.machine_lease import MachineLease
from shared.cluster.presence import ClusterPresence
from shared.cluster.versions import VersionRefused, compatibility_problem
from shared.config import parse_config
from shared.coordination.leases import InProcessLeaseStore, encode_record
from shared.version import mmr_version

ROOT = Path(__file__).parent.parent.parent


@pytest.mark.parametrize(("mine", "zero", "allowed"), [
    ("1.4.2", "1.4.0", True), ("1.4.0", "1.4.9", True), ("1.3.0", "1.4.0", True),
    ("1.5.0", "1.4.0", False), ("2.0.0", "1.4.0", False), ("1.0.0", "2.0.0", False),
])
def test_who_may_run_beside_machine_zero(mine: str, zero: str, allowed: bool) -> None:
    assert (compatibility_problem(mine, zero) is None) is allowed


def test_a_newer_minor_is_told_to_upgrade_machine_zero_first() -> None:
    assert "upgrade machine 0 first" in (compatibility_problem("1.5.0", "1.4.0") or "")
    assert "whole cluster stopped" in (compatibility_problem("2.0.0", "1.4.0") or "")
    # A standby machine 0 newer in Y is machine 0 being upgraded: allowed.
    assert compatibility_problem("1.5.0", "1.4.0", i_am_machine_zero=True) is None


async def _join(store: InProcessLeaseStore, version: str, machine_id: int) -> ClusterPresence:
    config = parse_config({"database": {"sqlite": "/nonexistent/x.db"}})
    lease = MachineLease(store, ProcessInfo("upload", version=version), config.cluster, machine_id)
    presence = ClusterPresence(store, lease, config)
    await presence.start()
    return presence


async def test_a_process_reads_machine_zeros_version_from_its_lease() -> None:
    store = InProcessLeaseStore()
    await store.claim("machine:0", "t", {"version": "1.4.0", "host": "h", "pid": 1,
                                         "service": "admin"}, 30)
    with pytest.raises(VersionRefused, match="upgrade machine 0 first"):
        await _join(store, "1.5.0", 16)
    assert await store.holder("machine:16") is None  # refused, so the claim was given back
    await (await _join(store, "1.4.3", 17)).close()


async def test_an_unknown_record_format_is_ignored_not_a_crash() -> None:
    store = InProcessLeaseStore()
    store._set("lease:machine:0", b'{"v": 99, "whatever": true}', 30)
    presence = await _join(store, "1.4.0", 16)  # machine 0's version unknown: starts, warns
    await presence.close()
    store._set("member:x", b'{"v": 99}', 30)
    store._set("member:y", encode_record("", {"machine_id": 1}), 30)
    assert [m.get("machine_id") for m in await store.members()] == [1]


def test_the_version_comes_from_pyproject_and_the_changelog_names_each_release() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert mmr_version() == declared
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (\d+\.\d+\.\d+) \((.*)\)$", changelog, re.MULTILINE)
    assert declared in [version for version, _ in releases]
    for _version, notes in releases:
        assert re.search(r"kind [XYZ]", notes), notes
    assert re.search(r"cut from [0-9a-f]{7,40}", changelog)



async def test_cached_values_and_messages_carry_a_format_version() -> None:
    from shared.coordination.envelope import VersionedCoordinator
    from shared.coordination.inprocess import InProcessCoordinator

    raw = InProcessCoordinator()
    coordinator = VersionedCoordinator(raw)
    await coordinator.cache_set("k", b"value", 30)
    assert await raw.cache_get("v1:k") == b"mmr:1\nvalue"
    assert await coordinator.cache_get("k") == b"value"
    await raw.cache_set("v1:k", b"mmr:2\n{\"new\": 1}", 30)  # a newer writer's format: a miss
    assert await coordinator.cache_get("k") is None
    await raw.cache_set("v1:k", b"unversioned", 30)
    assert await coordinator.cache_get("k") is None
    subscription = await coordinator.subscribe("c")
    await raw.publish("c", b"mmr:7\nfrom the future")
    await coordinator.publish("c", b"hello")
    assert await subscription.get(1) is None  # the unknown one is skipped, not a crash
    assert await subscription.get(1) == b"hello"
    await subscription.close()
