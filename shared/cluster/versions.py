"""The X.Y.Z rules of a rolling upgrade, checked against the cluster's machine 0 at start.

* Another major X than machine 0: refused. A change in X needs every process stopped.
* Same X, newer Y than machine 0: refused, "upgrade machine 0 first" (machine 0 migrates, and a
  newer minor may need the schema it brings).
* Same X, older or equal Y, any Z: runs (migrations within one X are additive).
"""

from __future__ import annotations

import re

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


class VersionRefused(Exception):
    """This build may not join the cluster at machine 0's version; the message says what to do."""


def parse_version(text: str) -> tuple[int, int, int]:
    match = _VERSION_RE.match(text)
    if match is None:
        raise ValueError(f"not an X.Y.Z version: {text!r}")
    return int(match[1]), int(match[2]), int(match[3])


def compatibility_problem(mine: str, machine_zero: str, i_am_machine_zero: bool = False) -> str | None:
    """Why a process at `mine` must not run beside machine 0 at `machine_zero`, or None.

    A standby machine 0 may be newer in Y than the holder: that is machine 0 being upgraded.
    """
    ours, theirs = parse_version(mine), parse_version(machine_zero)
    if ours[0] != theirs[0]:
        return (f"machine 0 runs mmr {machine_zero} and this process is {mine}: another major "
                "version. A change of X needs the whole cluster stopped and upgraded together "
                "(see CHANGELOG.md); stop every process, then start machine 0 first")
    if ours[1] > theirs[1] and not i_am_machine_zero:
        return (f"machine 0 runs mmr {machine_zero} and this process is {mine}, newer in Y: "
                "upgrade machine 0 first, then the other processes")
    return None
