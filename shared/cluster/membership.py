"""The live cluster as its processes publish it, and what is wrong with it.

Each process publishes one record (see `ClusterPresence.member_record`) that expires with its
lease. `cluster_problems` applies the operating rules of matrix-media-repo to the list: one
machine 0, one version line, one configuration, every service running, and file datastores only
on one host (or kept in sync by the operator).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.cluster.versions import parse_version
from shared.services import SERVICES

# The embedded default serves every route in one process.
_SERVES_ALL = "embedded"


@dataclass(frozen=True)
class Problem:
    kind: str  # version-skew, no-machine-0, no-process, config-differs, file-datastore-hosts
    severity: str  # error or warning
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "severity": self.severity, "message": self.message}


def _label(member: dict[str, Any]) -> str:
    return f"{member.get('service')}/{member.get('machine_id')} ({member.get('host')}:{member.get('pid')})"


def _version_problems(members: Sequence[dict[str, Any]]) -> list[Problem]:
    versions: dict[str, int] = defaultdict(int)
    for member in members:
        versions[str(member.get("version"))] += 1
    if len(versions) <= 1:
        return []
    listing = ", ".join(f"{v} ({n} process{'es' if n > 1 else ''})" for v, n in sorted(versions.items()))
    majors = set()
    for version in versions:
        try:
            majors.add(parse_version(version)[0])
        except ValueError:
            majors.add(-1)
    if len(majors) > 1:
        return [Problem("version-skew", "error",
                        f"versions of different majors run together: {listing}")]
    return [Problem("version-skew", "warning",
                    f"several versions run (fine during a rolling upgrade): {listing}")]


def machine_zero(members: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The member holding machine 0's lease, if any."""
    for member in members:
        if member.get("machine_id") == 0 and member.get("role") == "holder":
            return member
    return None


def _service_problems(members: Sequence[dict[str, Any]]) -> list[Problem]:
    running = {m.get("service") for m in members if m.get("role") == "holder"}
    if _SERVES_ALL in running:
        return []
    return [Problem("no-process", "error", f"no live process serves {service}")
            for service in SERVICES if service not in running]


def _config_problems(members: Sequence[dict[str, Any]], zero: dict[str, Any] | None) -> list[Problem]:
    if zero is None:
        return []
    reference = zero.get("config")
    return [Problem("config-differs", "warning",
                    f"{_label(m)} runs with another configuration than machine 0 "
                    f"({m.get('config')} vs {reference}): every process must share one")
            for m in members if m.get("config") != reference]


def _file_datastore_problems(members: Sequence[dict[str, Any]]) -> list[Problem]:
    hosts: dict[str, set[str]] = defaultdict(set)
    for member in members:
        for store in member.get("file_datastores") or []:
            hosts[str(store.get("id"))].add(str(member.get("host")))
    return [Problem("file-datastore-hosts", "warning",
                    f"file datastore {store_id!r} is used from {len(on)} hosts ({', '.join(sorted(on))}): "
                    "keep its folder the same shared directory everywhere, or better use S3")
            for store_id, on in sorted(hosts.items()) if len(on) > 1]


def cluster_problems(members: Sequence[dict[str, Any]]) -> list[Problem]:
    zero = machine_zero(members)
    problems = []
    if zero is None:
        problems.append(Problem("no-machine-0", "error",
                                "no live process holds machine 0: background tasks are not running"))
    problems += _version_problems(members)
    problems += _service_problems(members)
    problems += _config_problems(members, zero)
    problems += _file_datastore_problems(members)
    return problems


def sort_members(members: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(members, key=lambda m: (int(m.get("machine_id", -1)), str(m.get("role")),
                                          str(m.get("instance"))))


def cluster_report(members: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the admin endpoint answers and the CLI prints."""
    return {
        "members": sort_members(members),
        "problems": [p.as_dict() for p in cluster_problems(members)],
    }
