"""The previous mmr release, built from the commit `CHANGELOG.md` names, in its own venv.

The commit is checked out into a temporary git worktree (removed after), installed (not
editable, so the venv outlives the checkout) into `.test-cache/release-<commit>/venv`, and the
venv is kept keyed by commit: later runs reuse it. A lock file serialises builds between test
processes running in parallel. A checkout without that commit is a failure, never a skip: the
upgrade test would otherwise stop testing upgrades.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shared.version import mmr_version

ROOT = Path(__file__).parent.parent.parent
CACHE = ROOT / ".test-cache"
_RELEASE_RE = re.compile(r"^## (\d+\.\d+\.\d+) \(([^)]*)\)$", re.MULTILINE)
_CUT_FROM_RE = re.compile(r"cut from ([0-9a-f]{7,40})")
_INSTALL_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Release:
    version: str
    commit: str  # full hash
    venv: Path

    @property
    def mmr(self) -> list[str]:
        return [str(self.venv / "bin" / "mmr")]


def previous_release_in_changelog(changelog: str, current: str) -> tuple[str, str]:
    """(version, commit) of the newest released entry older than `current` (this build's
    version): the first one with `cut from` and another version. Once this build's version is
    itself released, its own entry names (nearly) this code, not the release before it."""
    for version, notes in _RELEASE_RE.findall(changelog):
        cut = _CUT_FROM_RE.search(notes)
        if cut and version != current:
            return version, cut[1]
    raise AssertionError("CHANGELOG.md names no released commit ('## X.Y.Z (kind K; cut from <commit>)')")


def _git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def full_commit(short: str) -> str:
    done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{short}^{{commit}}"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"CHANGELOG.md says the previous release was cut from {short}, but this checkout has "
            "no such commit (a shallow clone?). The upgrade test needs it: fetch the full history "
            "(`git fetch --unshallow`) or the release tag.")
    return done.stdout.strip()


def previous_release() -> Release:
    """The previous release installed in its cached venv (built on first use)."""
    version, short = previous_release_in_changelog((ROOT / "CHANGELOG.md").read_text(),
                                                   mmr_version())
    commit = full_commit(short)
    home = CACHE / f"release-{commit}"
    venv = home / "venv"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "installed").is_file():
            _build(commit, venv)
            (home / "installed").write_text(f"{version} {commit}\n")
    return Release(version, commit, venv)


def _build(commit: str, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="mmr-release-") as scratch:
        checkout = Path(scratch) / "src"
        _git("worktree", "add", "--detach", str(checkout), commit)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            # The same pip configuration (index, wheel cache) as the project's own venv.
            done = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(checkout)],
                capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_SECONDS, check=False)
            if done.returncode != 0:
                raise AssertionError(f"installing mmr at {commit} failed:\n{done.stderr[-3000:]}")
        finally:
            _git("worktree", "remove", "--force", str(checkout))
