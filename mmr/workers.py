"""`mmr serve SERVICE --workers N`: N processes of one service on one port, one core each.

The supervisor binds the port once and hands the listening socket to N child processes (the
kernel spreads connections between processes accepting on one socket). Each child is a full mmr
process with its own `MACHINE_ID=auto` lease, so the pool needs no ID planning. The supervisor
forwards SIGTERM/SIGINT, stops everything when a child cannot start, and restarts a child that
dies later. SIGHUP is forwarded too: each child reloads the config file itself (each holds
its own running config), so `kill -HUP <supervisor>` reloads the whole pool.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from mmr.serve import bind_socket, build_service_app, read_config, run_uvicorn
from mmr.services import StartupError
from shared.config import config_path_from_env
from shared.config_reload import reload_on_sighup
from shared.ids.machine_id import AUTO, ENV_VAR

_START_GRACE_SECONDS = 60.0
_RESTART_DELAY_SECONDS = 1.0


def check_workers(service: str, workers: int) -> None:
    if workers < 1:
        raise StartupError("--workers must be at least 1")
    if workers == 1:
        return
    if service == "admin":
        raise StartupError("the admin service is machine 0 and runs as one process: --workers 1")
    if os.environ.get(ENV_VAR, "").strip().lower() != AUTO:
        raise StartupError(f"--workers {workers} needs MACHINE_ID=auto (each worker leases its "
                           "own ID from cluster.machineIdRanges)")


def _listen(host: str, port: int) -> socket.socket:
    sock = bind_socket(host, port)
    sock.set_inheritable(True)
    return sock


def _spawn(fd: int, service: str, config: str | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "mmr.workers", "--fd", str(fd),
               "--supervisor", str(os.getpid()), service,
               *(["--config", config] if config else [])]
    return subprocess.Popen(command, pass_fds=(fd,))


def run_workers(service: str, config: str | None, host: str, port: int, workers: int) -> int:
    """Supervise `workers` children serving `service` on host:port; the exit code."""
    sock = _listen(host, port)
    children = [_spawn(sock.fileno(), service, config) for _ in range(workers)]
    started = time.monotonic()
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    def reload(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    try:
        while not stopping:
            for index, child in enumerate(children):
                code = child.poll()
                if code is None or stopping:
                    continue
                if time.monotonic() - started < _START_GRACE_SECONDS:
                    stop(signal.SIGTERM, None)
                    for other in children:
                        other.wait()
                    return code or 1
                print(f"mmr: worker {child.pid} exited ({code}); restarting it", file=sys.stderr)
                time.sleep(_RESTART_DELAY_SECONDS)
                children[index] = _spawn(sock.fileno(), service, config)
            time.sleep(0.2)
        for child in children:
            child.wait()
        return 0
    finally:
        sock.close()


_PR_SET_PDEATHSIG = 1


def _die_with_supervisor(supervisor_pid: int) -> None:
    """A supervisor that is SIGKILLed cannot forward SIGTERM: ask the kernel to send it when the
    supervisor dies, so no worker lingers on the port (Linux; elsewhere the supervisor's own
    SIGTERM handling is all there is)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor_pid:  # it died before the request took effect
        raise SystemExit(1)


def child_main(argv: list[str] | None = None) -> None:
    """One worker: a normal service process serving on the supervisor's socket."""
    parser = argparse.ArgumentParser(prog="mmr worker")
    parser.add_argument("service")
    parser.add_argument("--config")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--supervisor", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_supervisor(args.supervisor)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor forwards what matters
    # A reload forwarded before the server installs its handler must not end the worker.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        cfg = read_config(args.config)
        if cfg is None:
            raise StartupError("a worker needs --config FILE (or MMR_CONFIG)")
        app = build_service_app(args.service, cfg)
    except StartupError as exc:
        print(f"mmr: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    path = config_path_from_env(args.config)
    if path is not None:
        reload_on_sighup(app, path)
    # A socket object of the listening socket's real family: uvicorn's own `fd=` takes every
    # inherited socket for AF_UNIX, and asyncio then leaves TCP_NODELAY off on the connections it
    # accepts, so small answers waited ~40 ms for the client's delayed ACK (Nagle).
    run_uvicorn(app, "", 0, cfg.repo, sock=socket.socket(fileno=args.fd))


if __name__ == "__main__":
    child_main()
