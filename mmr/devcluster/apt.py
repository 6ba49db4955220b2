"""Installing a missing server from the system's packages, as scripts/bootstrap.sh does: only as
root on a Debian-like machine; elsewhere the caller says what to install."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(*alternatives: str) -> bool:
    """Install the first of `alternatives` apt can install (refreshing its lists once if
    needed); False when not root, not Debian-like, or none installs."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for package in alternatives:
        for refresh in (False, True):
            if refresh:
                subprocess.run(["apt-get", "update", "-q"], env=env, check=False,
                               capture_output=True)
            done = subprocess.run(["apt-get", "install", "-y", "-q", package], env=env,
                                  check=False, capture_output=True)
            if done.returncode == 0:
                return True
    return False
