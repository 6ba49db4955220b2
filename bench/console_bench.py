"""How long each console page takes with 100,000 media rows, on SQLite and on PostgreSQL.

    .venv/bin/python bench/console_bench.py [--rows 100000] [--runs 10] [--only sqlite|postgres]

For each database: `mmr serve` (the embedded default on SQLite; the admin service as machine 0
on PostgreSQL and a Redis of its own), then `rows` media rows written straight into its database (one local
homeserver with 500 uploaders and a few remote origins, a year of creation times, two
datastores, a thumbnail for every fifth item, 200 finished tasks), `ANALYZE`, a console sign-in,
and each page asked once (first) and `runs` times more: median, 95th percentile and worst, in
ms, with the 300 ms budget marked.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.rig import HOST, SECRET, base_config, started, write_config  # noqa: E402
from shared.config import DatabaseConfig  # noqa: E402
from shared.db.engine import create_engine  # noqa: E402
from shared.db.models import BackgroundTaskRow, MediaRow, ThumbnailRow  # noqa: E402
from tests.infra.postgres import temporary_database  # noqa: E402
from tests.infra.private_redis import PrivateRedis  # noqa: E402
from tests.infra.processes import MmrProcess, start_mmr  # noqa: E402

CONSOLE = "/_matrix/media/unstable/admin/console"
BUDGET_MS = 300.0
DAY_MS = 86_400_000
USERS = 500
BATCH = 5000


def media_rows(count: int, now_ms: int) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(15)
    batch: list[dict[str, Any]] = []
    for i in range(count):
        local = i % 10 != 0
        batch.append({
            "origin": HOST if local else f"remote{i % 7}.example",
            "media_id": f"bench{i:08d}", "upload_name": f"file {i}.png",
            "content_type": rng.choice(("image/png", "image/jpeg", "video/mp4", "text/plain")),
            "user_id": f"@user{int(rng.paretovariate(1.2)) % USERS}:{HOST}" if local else None,
            "sha256": f"{i:064x}", "size_bytes": rng.randint(1_000, 5_000_000),
            "creation_ts": now_ms - rng.randint(0, 365 * DAY_MS),
            "datastore_id": "local" if i % 3 else "archive", "location": f"bench/{i}",
            "quarantined": i % 1000 == 0, "authenticated": True,
            "last_access_ts": now_ms - rng.randint(0, 30 * DAY_MS),
        })
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def populate(database: DatabaseConfig, rows: int) -> None:
    engine = create_engine(database, "console-bench")
    now_ms = int(time.time() * 1000)
    try:
        async with engine.begin() as conn:
            for batch in media_rows(rows, now_ms):
                await conn.execute(insert(MediaRow.__table__), batch)
                thumbs = [{"origin": r["origin"], "media_id": r["media_id"], "width": 320,
                           "height": 240, "method": "scale", "animated": False,
                           "content_type": "image/png", "sha256": r["sha256"][::-1],
                           "size_bytes": r["size_bytes"] // 20, "creation_ts": r["creation_ts"],
                           "datastore_id": r["datastore_id"], "location": r["location"] + "t"}
                          for n, r in enumerate(batch) if n % 5 == 0]
                await conn.execute(insert(ThumbnailRow.__table__), thumbs)
            await conn.execute(insert(BackgroundTaskRow.__table__), [
                {"name": "purge_media", "params": "{}", "start_ts": now_ms - i * 60_000,
                 "end_ts": now_ms - i * 60_000 + 500, "done": 10, "total": 10, "attempts": 1,
                 "result": "{}"} for i in range(200)])
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    finally:
        await engine.dispose()


def sign_in(http: httpx.Client) -> None:
    page = http.get(CONSOLE + "/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    answer = http.post(CONSOLE + "/signin", data={"token": SECRET, "csrf": csrf.group(1)},
                       headers={"Origin": f"http://{HOST}"})
    assert answer.status_code == 303, answer.text


PAGES = [
    ("cluster", "/cluster"),
    ("tasks", "/tasks"),
    ("usage", "/usage"),
    ("chart: storage over time", "/usage/charts/storage.svg"),
    ("chart: uploads per day", "/usage/charts/uploads.svg"),
    ("chart: top users", "/usage/charts/users.svg"),
    ("chart: datastores", "/usage/charts/datastores.svg"),
    ("media: an mxc URI", f"/media?q=mxc://{HOST}/bench00000001"),
    ("media: the top user", f"/media?q=@user1:{HOST}"),
    ("confirm: purge remote", "/tasks/confirm/purge-remote?before=2026-01-01"),
]


def time_pages(url: str, runs: int) -> list[tuple[str, float, float, float, float]]:
    results = []
    with httpx.Client(base_url=url, headers={"Host": HOST}, timeout=60) as http:
        sign_in(http)
        for label, path in PAGES:
            start = time.perf_counter()
            assert http.get(CONSOLE + path).status_code == 200, path
            first = (time.perf_counter() - start) * 1000
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                response = http.get(CONSOLE + path)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            results.append((label, first, statistics.median(times), p95, times[-1]))
    return results


@contextmanager
def sqlite_mmr(work: Path) -> Iterator[tuple[MmrProcess, DatabaseConfig]]:
    data = work / "sqlite"
    data.mkdir()
    database = {"sqlite": str(data / "mmr.db")}
    config = base_config(data, {}) | {"database": database, "datastores": [
        {"id": "local", "type": "file", "forKinds": ["all"], "opts": {"path": str(data / "media")}},
        {"id": "archive", "type": "file", "forKinds": [], "opts": {"path": str(data / "archive")}}]}
    process = started(start_mmr("embedded", ["serve", "--config",
                                             write_config(data / "config.yaml", config)], data / "logs"))
    try:
        yield process, DatabaseConfig(**database)
    finally:
        process.stop()


@contextmanager
def postgres_mmr(work: Path) -> Iterator[tuple[MmrProcess, DatabaseConfig]]:
    data = work / "postgres"
    data.mkdir()
    # A Redis of its own: the machine's shared one is flushed by test runs now and then.
    redis = PrivateRedis(data / "redis").start()
    with temporary_database("mmr_console_bench") as url:
        database = {"postgres": url}
        config = base_config(data, {}) | {
            "database": database, "redis": {"enabled": True, "url": redis.url},
            "datastores": [
                {"id": "local", "type": "file", "forKinds": ["all"], "opts": {"path": str(data / "media")}},
                {"id": "archive", "type": "file", "forKinds": [], "opts": {"path": str(data / "archive")}}]}
        path = write_config(data / "config.yaml", config)
        process = started(start_mmr("admin", ["serve", "admin", "--config", path], data / "logs",
                                    env={"MACHINE_ID": "0"}))
        try:
            yield process, DatabaseConfig(**database)
        finally:
            process.stop()
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    args = parser.parse_args()
    over = False
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        for name, rig in (("sqlite", sqlite_mmr), ("postgres", postgres_mmr)):
            if args.only and args.only != name:
                continue
            with rig(Path(tmp)) as (process, database):
                start = time.perf_counter()
                asyncio.run(populate(database, args.rows))
                print(f"\n{name}: {args.rows} media rows written in {time.perf_counter() - start:.1f} s;"
                      f" {args.runs} runs per page")
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                print(f"load average {load} on {os.cpu_count()} cores (other work slows every figure)")
                print("first: the first request (usage's reads the figures; the charts and later"
                      " views share them for 60 s)")
                print(f"{'page':28} {'first':>8} {'median':>8} {'p95':>8} {'worst':>8}")
                for label, first, median, p95, worst in time_pages(process.url, args.runs):
                    flag = "" if max(first, p95) < BUDGET_MS else "  OVER 300 ms"
                    over = over or bool(flag)
                    print(f"{label:28} {first:8.1f} {median:8.1f} {p95:8.1f} {worst:8.1f}{flag}")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
