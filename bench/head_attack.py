"""Memory of the embedded default under the request-head attack: N parallel requests each
carrying one huge header (unbounded, 4 x 128 MiB took the process from 137 MB to 444 MB).

    .venv/bin/python bench/head_attack.py [--attackers 4] [--header-mib 128]

Runs twice: `mmr serve` as shipped (heads bounded where the bytes arrive, 431 Matrix JSON) and
the same embedded app under uvicorn's stock httptools protocol (what mmr ran before). For each,
the process's RSS before the attack and its peak while the attack runs (sampled every 20 ms),
and what the attackers were answered.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.infra.http_server import free_port  # noqa: E402
from tests.infra.processes import MmrProcess, clean_env, start_mmr  # noqa: E402

MIB = 1024 * 1024
# The same embedded app, served by uvicorn's default protocol (no head bounds).
STOCK_UVICORN = (
    "import sys, uvicorn\n"
    "from mmr.embedded import embedded_config\n"
    "from mmr.serve import build_embedded_app\n"
    "from pathlib import Path\n"
    "app = build_embedded_app(embedded_config(Path(sys.argv[1]), 'localhost', None), True)\n"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')\n"
)


def attack(port: int, header_bytes: int, answers: list[str]) -> None:
    chunk = b"a" * MIB
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Attack: ")
            for _ in range(header_bytes // MIB):
                sock.sendall(chunk)
            sock.sendall(b"\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        try:
            answers.append(sock.recv(200).split(b"\r\n", 1)[0].decode() or "closed")
        except OSError as exc:
            answers.append(type(exc).__name__)


def measure(process: MmrProcess, attackers: int, header_bytes: int) -> tuple[float, float, list[str]]:
    proc = psutil.Process(process.process.pid)
    before = proc.memory_info().rss
    peak, answers = before, []
    threads = [threading.Thread(target=attack, args=(process.port, header_bytes, answers))
               for _ in range(attackers)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, proc.memory_info().rss)
        time.sleep(0.02)
    return before / MIB, peak / MIB, answers


def start_stock(work: Path) -> MmrProcess:
    port = free_port()
    out, err = work / "stock.stdout", work / "stock.stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        popen = subprocess.Popen([sys.executable, "-c", STOCK_UVICORN, str(work / "stock"), str(port)],
                                 cwd=REPO_ROOT, stdout=stdout, stderr=stderr, env=clean_env())
    return MmrProcess("stock", ["python", "-c", "..."], popen, port, out, err)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--header-mib", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmr-head-bench-") as tmp:
        work = Path(tmp)
        variants = {
            "mmr serve (bounded)": lambda: start_mmr("bounded", ["serve", "--data", str(work / "a")],
                                                     work / "logs"),
            "stock uvicorn (before)": lambda: start_stock(work),
        }
        for name, start in variants.items():
            process = start()
            try:
                process.wait_healthy()
                before, peak, answers = measure(process, args.attackers, args.header_mib * MIB)
                print(f"{name:24s} RSS before {before:7.1f} MiB, peak during "
                      f"{args.attackers} x {args.header_mib} MiB headers {peak:7.1f} MiB "
                      f"(+{peak - before:.1f}); answers: {sorted(set(answers))}")
            finally:
                process.stop()


if __name__ == "__main__":
    main()
