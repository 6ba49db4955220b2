"""Small process helpers shared by the dev cluster and the tests: free ports, stopping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` ports the kernel says are free now, all held open together so they are distinct
    (ports taken one at a time may repeat: the kernel can hand out a just-closed one again)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stop_process(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int:
    """Send `sig`, wait for the exit, kill after `timeout`; the exit code (-9 when killed)."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def process_start_time(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, from /proc), or None when it does not run:
    with the pid it names one process for good, since pids are reused."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Field 22 of stat(5); fields[0] here is field 3 (the state).
    return None if fields[0] == "Z" else fields[19]


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie child counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop_pid(pid: int, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Stop a process that is not our child: `sig`, then SIGKILL after `timeout`.
    False when it was not running."""
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
            break
        time.sleep(0.05)
    return True
