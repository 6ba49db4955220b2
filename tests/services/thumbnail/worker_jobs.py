"""Jobs for the worker-pool tests, run inside real worker processes."""

from __future__ import annotations

import os
import signal
import time


def echo(value: object) -> object:
    return value


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def unpicklable_failure() -> None:
    class Local(Exception):
        pass

    raise Local("cannot travel")


def crash() -> None:
    """What a decoder bug looks like from outside: the process dies on a signal."""
    os.kill(os.getpid(), signal.SIGSEGV)


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def spin(seconds: float) -> int:
    """Burn CPU (not wall-clock waiting) for up to `seconds`."""
    deadline = time.process_time() + seconds
    count = 0
    while time.process_time() < deadline:
        count += 1
    return count


def allocate(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def killed() -> None:
    """What the OOM killer (or an operator's kill -9) looks like from the pool's side."""
    os.kill(os.getpid(), signal.SIGKILL)
