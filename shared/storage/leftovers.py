"""What a crashed process leaves behind, and each process sweeping its own at start.

A `kill -9` (or an OOM kill) skips every `finally`: spooled uploads stay in `repo.tempPath`,
thumbnail job folders stay next to them, and a file datastore may keep a `.<name>.<...>.tmp` that
was about to be renamed into place. So every temp name carries its owner's tag,
`m<MACHINE_ID>-p<pid>-s<process start>`: at start a process removes the entries tagged with its
own machine ID whose process is gone (no such pid, or a pid now used by a process that started at
another time). A live process with the same machine ID (two test runs on one host, a
misconfigured duplicate) keeps its files, and other machines' files are never touched, even in a
temp folder many processes share.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

_TAG = re.compile(r"(?:^|[.-])m(\d+)-p(\d+)-s(\d+)-")


@dataclass(frozen=True)
class TempOwner:
    """The process a temp name belongs to."""

    machine_id: int
    pid: int
    started: int  # the process's start time, in hundredths of a second since the epoch

    @classmethod
    def current(cls, machine_id: int) -> TempOwner:
        pid = os.getpid()
        return cls(machine_id, pid, _start_of(pid) or 0)

    @property
    def tag(self) -> str:
        return f"m{self.machine_id}-p{self.pid}-s{self.started}"

    @classmethod
    def of_name(cls, name: str) -> TempOwner | None:
        found = _TAG.search(name)
        if found is None:
            return None
        return cls(int(found[1]), int(found[2]), int(found[3]))

    def is_alive(self) -> bool:
        return _start_of(self.pid) == self.started


def _start_of(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).create_time() * 100)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@dataclass
class Swept:
    entries: int = 0
    bytes: int = 0

    def add(self, other: Swept) -> None:
        self.entries += other.entries
        self.bytes += other.bytes


def _is_leftover_of(name: str, machine_id: int) -> bool:
    owner = TempOwner.of_name(name)
    return owner is not None and owner.machine_id == machine_id and not owner.is_alive()


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.lstat().st_size


def _remove(paths: Iterable[Path]) -> Swept:
    swept = Swept()
    for path in paths:
        try:
            size = _size(path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        swept.entries += 1
        swept.bytes += size
    return swept


def sweep_temp_dir(temp_dir: Path, machine_id: int) -> Swept:
    """Remove spool files and job folders a dead process of `machine_id` left in `temp_dir`."""
    if not temp_dir.is_dir():
        return Swept()
    return _remove(p for p in temp_dir.iterdir() if _is_leftover_of(p.name, machine_id))


def sweep_file_partials(root: Path, machine_id: int) -> Swept:
    """Remove a dead process's half-stored objects (`ab/cd/.<name>.<tag>-<uuid>.tmp`)."""
    return _remove(p for p in root.glob("*/*/.*.tmp") if _is_leftover_of(p.name, machine_id))


def sweep_own_leftovers(temp_dir: Path, file_roots: Iterable[Path], machine_id: int) -> Swept:
    """Everything this machine's dead predecessors left; logged when there was any."""
    swept = sweep_temp_dir(temp_dir, machine_id)
    for root in file_roots:
        swept.add(sweep_file_partials(root, machine_id))
    if swept.entries:
        log.warning("removed %d temp files (%d bytes) left by a previous run of machine %d",
                    swept.entries, swept.bytes, machine_id)
    return swept
