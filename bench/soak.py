"""The soak of tests/e2e/test_soak.py, for as long as asked: the embedded default and a
cluster-shaped process (PostgreSQL, Redis, SeaweedFS S3) under the mixed workload of
tests/e2e/soak.py, printing each process's RSS / open-files / threads / children / DB-connection
curve and the growth between the middle and the last third of the run.

    .venv/bin/python bench/soak.py [--minutes 10] [--workers 3] [--sample-every 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.rig import SECRET, base_config  # noqa: E402
from tests.e2e.soak import MIB, Target, curve, soak, thirds  # noqa: E402
from tests.infra.postgres import temporary_database  # noqa: E402
from tests.infra.processes import start_mmr  # noqa: E402
from tests.infra.redis_server import ensure_redis  # noqa: E402
from tests.infra.seaweedfs import start_seaweedfs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--sample-every", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmr-soak-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        database = stack.enter_context(temporary_database("mmr_bench_soak"))
        s3 = start_seaweedfs(work / "seaweedfs")
        stack.callback(s3.stop)
        bucket = f"soak-{uuid.uuid4().hex[:12]}"
        s3.client().create_bucket(Bucket=bucket)
        config = base_config(work / "cluster", {}) | {
            "database": {"postgres": database},
            "redis": {"enabled": True, "url": ensure_redis()},
            "datastores": [{"id": "s3", "type": "s3", "forKinds": ["all"], "opts": {
                "endpoint": s3.endpoint, "bucketName": bucket, "accessKeyId": s3.access_key,
                "accessSecret": s3.secret_key, "region": s3.region, "ssl": False,
                "pathStyle": True}}],
        }
        (work / "cluster").mkdir()
        config_path = work / "cluster.yaml"
        config_path.write_text(yaml.safe_dump(config))
        embedded = start_mmr("embedded", ["serve", "--data", str(work / "mmr-data")], work / "logs",
                             cwd=work)
        stack.callback(embedded.stop)
        cluster = start_mmr("cluster", ["serve", "--config", str(config_path)], work / "logs",
                            env={"MACHINE_ID": "0"})
        stack.callback(cluster.stop)
        for process in (embedded, cluster):
            process.wait_healthy()
        token = embedded.wait_for_stdout("token:").split("token:", 1)[1].strip()
        pg_url = database.replace("postgres://", "postgresql://", 1)
        db_name = database.rsplit("/", 1)[1].split("?")[0]

        def connections() -> int:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                                   "pid <> pg_backend_pid()", (db_name,)).fetchone()
            return int(row[0]) if row else 0

        targets = [
            Target("embedded", embedded.url, embedded.port, embedded.process.pid, token),
            Target("cluster", cluster.url, cluster.port, cluster.process.pid, SECRET, connections),
        ]
        asyncio.run(soak(targets, args.minutes * 60, args.workers, args.sample_every))
        for target in targets:
            print(curve(target))
            middle, last = thirds(target.samples)
            rss = (max(s.rss for s in last) - max(s.rss for s in middle)) / MIB
            fds = max(s.fds for s in last) - max(s.fds for s in middle)
            print(f"  growth, middle -> last third: RSS {rss:+.1f} MiB, fds {fds:+d}; "
                  f"{sum(target.outcomes.values())} requests: {dict(sorted(target.outcomes.items()))}")


if __name__ == "__main__":
    main()
