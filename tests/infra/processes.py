"""`mmr` as a real subprocess, exactly as an operator starts it.

Output goes to files (not pipes), so a chatty process can never block on a full pipe, and the
test can read what it printed so far at any time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from mmr.devcluster.procs import stop_process as devcluster_stop
from tests.infra.http_server import free_port

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
# The test process's own settings must not leak into the mmr under test.
_SCRUBBED_ENV_PREFIXES = ("MMR_",)
_SCRUBBED_ENV_NAMES = ("MACHINE_ID",)


def mmr_command() -> list[str]:
    """The `mmr` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "mmr"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from mmr.cli import main; main()"]


def clean_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment without mmr settings, plus `extra` (None removes a name)."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(_SCRUBBED_ENV_PREFIXES) and name not in _SCRUBBED_ENV_NAMES
    }
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def stop_process(
    process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float = STOP_TIMEOUT_SECONDS
) -> int:
    """Send `sig`, wait for the exit, kill after `timeout`; the exit code (-9 when killed)."""
    return devcluster_stop(process, sig, timeout)


def wait_for_200(url: str, timeout: float, check: Callable[[], None] = lambda: None) -> bool:
    """Poll `url` until it answers 200 (True) or `timeout` passes (False); `check` runs before
    each try and raises when waiting is pointless (the process died)."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@dataclass
class MmrProcess:
    """One running `mmr ...` with its output in `log_dir/<name>.{stdout,stderr}`."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        """What to show when something about this process went wrong."""
        tail = "\n".join(self.stderr().splitlines()[-40:])
        return f"`{' '.join(self.args)}` (exit {self.process.poll()}), stderr tail:\n{tail}"

    def wait_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Return once /healthz answers 200; raise with the stderr tail if it dies or hangs."""
        if not wait_for_200(self.url + "/healthz", timeout, self._raise_if_exited):
            raise RuntimeError(f"mmr {self.name} not healthy in {timeout}s: {self.describe()}")

    def _raise_if_exited(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"mmr {self.name} exited during start: {self.describe()}")

    def wait_for_stdout(self, needle: str, timeout: float = START_TIMEOUT_SECONDS) -> str:
        """The first stdout line containing `needle`, once printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stdout().splitlines():
                if needle in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"mmr {self.name} never printed {needle!r}: {self.describe()}")

    def wait_exit(self, timeout: float = START_TIMEOUT_SECONDS) -> int:
        """The exit code of a process expected to stop by itself (killed after `timeout`)."""
        try:
            return int(self.process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"mmr {self.name} did not exit: {self.describe()}") from None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Stop with `sig` (SIGINT is Ctrl-C), killing after `timeout`; the exit code."""
        return stop_process(self.process, sig, timeout)


def start_mmr(
    name: str,
    args: Sequence[str],
    log_dir: Path,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
    listen: bool = True,
    mmr: Sequence[str] | None = None,
) -> MmrProcess:
    """Start `mmr <args>` without waiting; with `listen`, `--port <a free port>` is added.

    `mmr` is another build's command (the previous release's), else this environment's.
    """
    port = free_port() if listen else 0
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    command = [*(mmr or mmr_command()), *args, *(["--port", str(port)] if listen else [])]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            env=clean_env(env), cwd=cwd,
        )
    return MmrProcess(name, command, process, port, stdout_path, stderr_path)


def run_mmr(
    args: Sequence[str], env: Mapping[str, str | None] | None = None, timeout: float = 60,
    mmr: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `mmr <args>` to completion (for commands expected to exit by themselves)."""
    return subprocess.run(
        [*(mmr or mmr_command()), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
        env=clean_env(env), timeout=timeout, check=False,
    )


@contextlib.contextmanager
def serving_mmr(name: str, args: Sequence[str], workdir: Path) -> Iterator[MmrProcess]:
    """`mmr <args>` started in `workdir` (logs in `workdir/logs`), healthy, stopped at the end."""
    process = start_mmr(name, args, workdir / "logs", cwd=workdir)
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()

