"""Removing temp files that a killed process left behind.

A process that is SIGKILLed (or OOM-killed) mid-upload cannot delete its spool file. Spool files
are named `spool-<pid>-….part`; one is stale when that process is gone, or when it is this
process's own pid but older than this process (a container restarted with the same pid). Every
process sweeps its temp folder at start, and machine 0 sweeps the shared one periodically.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

_SPOOL_RE = re.compile(r"^spool-(\d+)-.*\.part$")
_STARTED = time.time()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def stale_spool_files(temp_dir: Path) -> list[Path]:
    stale = []
    for path in temp_dir.glob("spool-*.part"):
        match = _SPOOL_RE.match(path.name)
        if match is None:
            continue
        pid = int(match[1])
        try:
            older_than_me = path.stat().st_mtime < _STARTED
        except FileNotFoundError:
            continue
        if (pid == os.getpid() and older_than_me) or (pid != os.getpid() and not _alive(pid)):
            stale.append(path)
    return stale


def sweep_stale_spools(temp_dir: Path) -> int:
    """Delete the stale spool files of `temp_dir`; how many were removed."""
    removed = 0
    for path in stale_spool_files(temp_dir):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.warning("removed %d temp file(s) left by killed processes in %s", removed, temp_dir)
    return removed
