"""What the benchmark reads off the servers and how it loads them.

* `ProcessTree`: CPU seconds and resident memory of a server's processes, children included,
  from /proc (no psutil): the CPU a server spent is the figure that holds when the client shares
  the cores with it.
* `PeakSampler`: the highest summed RSS of some trees while a workload runs.
* `run_wrk`: wrk with a generated Lua script (paths round-robin or made unique per request,
  optional POST bodies made distinct per request) that prints its summary as one JSON line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name may hold spaces and parentheses: split after its last ')'.
            return stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


@dataclass(frozen=True)
class ProcessTree:
    """The processes under some root pids (a server, its workers, their children)."""

    roots: tuple[int, ...]

    def pids(self) -> list[int]:
        children = _children_by_parent()
        found: list[int] = []
        pending = list(self.roots)
        while pending:
            pid = pending.pop()
            if pid in found:
                continue
            found.append(pid)
            pending += children.get(pid, [])
        return found

    def cpu_seconds(self) -> float:
        """utime + stime of every live process, plus the roots' reaped children (cutime +
        cstime), so a worker that exited during the run still counts."""
        ticks = 0
        for pid in self.pids():
            fields = _stat_fields(pid)
            if fields is None:
                continue
            ticks += int(fields[11]) + int(fields[12])
            if pid in self.roots:
                ticks += int(fields[13]) + int(fields[14])
        return ticks / CLOCK_TICKS

    def rss_bytes(self) -> int:
        return rss_of_pids(self.pids())


def rss_of_pids(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE_SIZE
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def cpu_of(trees: Iterable[ProcessTree]) -> float:
    return sum(tree.cpu_seconds() for tree in trees)


def rss_of(trees: Iterable[ProcessTree]) -> int:
    return sum(tree.rss_bytes() for tree in trees)


class PeakSampler:
    """The highest summed RSS of `trees`, sampled every `interval` s while the block runs.

    Finding a tree's processes reads every /proc/<pid>/stat of the machine, which on a small box
    is CPU taken from the servers under test: the list is refreshed once a second and each
    sample reads only those processes' statm."""

    REFRESH_SECONDS = 1.0

    def __init__(self, trees: Sequence[ProcessTree], interval: float = 0.05) -> None:
        self.trees = list(trees)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        refresh_every = max(1, round(self.REFRESH_SECONDS / self.interval))
        pids: list[int] = []
        for sample in itertools.count():
            if sample % refresh_every == 0:
                pids = [pid for tree in self.trees for pid in tree.pids()]
            self.peak = max(self.peak, rss_of_pids(pids))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_of(self.trees))


# --- wrk ----------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get (Debian package `wrk`) when missing and root."""
    found = shutil.which("wrk")
    if found is None:
        from mmr.devcluster.apt import apt_install

        if apt_install("wrk"):
            found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is needed as the load client: `apt-get install wrk`")
    return found


@dataclass
class WrkResult:
    requests: int
    bytes: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    client_cpu_seconds: float = 0.0  # wrk's own user + system time

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for ASCII


def wrk_script(paths: Sequence[str], headers: dict[str, str], *, unique: bool = False,
               method: str = "GET", body_bytes: int = 0) -> str:
    """Lua for wrk: cycle through `paths` (with `unique`, append `-<thread>-<count>` to the path,
    e.g. inside a trailing encoded URL, so every request is new); with `body_bytes`, POST a
    body of that size made distinct by its prefix."""
    path_list = ", ".join(_lua_string(p) for p in paths)
    header_lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}"
                             for k, v in headers.items())
    body = (f'local filler = string.rep("m", {max(body_bytes - 32, 0)})' if body_bytes
            else "local filler = nil")
    return f"""
local paths = {{{path_list}}}
{header_lines}
{body}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
function request()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  if {"true" if unique else "false"} then
    path = path .. "-" .. tostring(tid or 0) .. "-" .. tostring(counter)
  end
  if filler then
    local body = string.format("%08d%024d", tid or 0, counter) .. filler
    return wrk.format({_lua_string(method)}, path, nil, body)
  end
  return wrk.format({_lua_string(method)}, path)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"bytes":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(base_url: str, paths: Sequence[str], headers: dict[str, str], *, connections: int,
            seconds: float, unique: bool = False, method: str = "GET", body_bytes: int = 0,
            threads: int = 2, timeout_s: int = 30) -> WrkResult:
    """One wrk run against `base_url`; raises with wrk's output if it fails or prints nothing."""
    wrk = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(paths, headers, unique=unique, method=method,
                                body_bytes=body_bytes))
    try:
        command = [wrk, f"-t{min(threads, connections)}", f"-c{connections}",
                   f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s}s", "-s", script.name,
                   base_url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=seconds + timeout_s + 30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(requests=raw["requests"], bytes=raw["bytes"],
                     seconds=raw["duration_us"] / 1e6, p50_ms=raw["p50_us"] / 1000,
                     p99_ms=raw["p99_us"] / 1000, errors=raw["errors"],
                     client_cpu_seconds=(after.ru_utime - before.ru_utime)
                     + (after.ru_stime - before.ru_stime))


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- CPU caps -----------------------------------------------------------------------------------


class CpuCapUnavailable(RuntimeError):
    """No cgroup CPU controller this process may write (not root, or none mounted)."""


def cgroup_cpu_root() -> tuple[Path, int]:
    """(mount point, version) of a writable cgroup CPU controller: v1's `cpu` hierarchy, or a
    cgroup2 mount whose root offers `cpu`."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError as exc:
        raise CpuCapUnavailable("no /proc/self/mountinfo") from exc
    found: list[tuple[Path, int]] = []
    for line in mounts:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        point, fstype, options = Path(fields[4]), tail[0], tail[2].split(",")
        if fstype == "cgroup" and "cpu" in options:
            found.append((point, 1))
        elif fstype == "cgroup2" and "cpu" in _read(point / "cgroup.controllers").split():
            found.append((point, 2))
    for point, version in found:
        if os.access(point, os.W_OK):
            return point, version
    raise CpuCapUnavailable("no writable cgroup cpu controller (the bench needs root for caps)")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class CpuCap:
    """Each of `pids` in a cgroup of its own whose CPU quota is `cores` of a core (None: no
    quota) and whose weight is `weight` times the default, while the block runs; then each goes
    back to the cgroup it came from.

    What it is for: on a machine with few cores the load client and nginx take CPU from the
    processes under test, so N processes cannot show N times one's throughput. Capped at a
    fraction of a core each (well under what the machine has left), every process gets the
    same CPU whether it is alone or one of two, as each would get a core of its own on a
    bigger machine: the throughput of two over one's is then the pool's own scaling. The weight
    lets a capped process reach its cap on a machine busy with other work (the caps bound what
    that takes from the rest)."""

    PERIOD_US = 100_000

    def __init__(self, pids: Sequence[int], cores: float | None, weight: int = 1) -> None:
        self.pids = list(pids)
        self.cores = cores
        self.weight = weight
        self._made: list[tuple[int, Path, Path]] = []  # pid, its cgroup, where it came from

    def _origin(self, pid: int, root: Path, version: int) -> Path:
        for line in _read(Path(f"/proc/{pid}/cgroup")).splitlines():
            number, controllers, path = line.split(":", 2)
            if (version == 2 and number == "0") or (version == 1 and "cpu" in controllers.split(",")):
                return root / path.lstrip("/")
        return root

    def __enter__(self) -> CpuCap:
        root, version = cgroup_cpu_root()
        quota = None if self.cores is None else max(1000, round(self.cores * self.PERIOD_US))
        try:
            if version == 2 and "cpu" not in _read(root / "cgroup.subtree_control").split():
                (root / "cgroup.subtree_control").write_text("+cpu")
            for pid in self.pids:
                origin = self._origin(pid, root, version)
                group = root / f"mmr-bench-cap-{os.getpid()}-{pid}"
                group.mkdir()
                self._made.append((pid, group, origin))
                if version == 2:
                    (group / "cpu.weight").write_text(str(100 * self.weight))
                    if quota is not None:
                        (group / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
                else:
                    (group / "cpu.shares").write_text(str(1024 * self.weight))
                    if quota is not None:
                        (group / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
                        (group / "cpu.cfs_quota_us").write_text(str(quota))
                (group / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            self.__exit__()
            raise CpuCapUnavailable(f"cannot cap CPU with cgroups: {exc}") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        for pid, group, origin in reversed(self._made):
            # Threads and children the process made meanwhile are in the group too.
            for member in _read(group / "cgroup.procs").split() or [str(pid)]:
                with contextlib.suppress(OSError):
                    (origin / "cgroup.procs").write_text(member)
            with contextlib.suppress(OSError):
                group.rmdir()
        self._made = []
