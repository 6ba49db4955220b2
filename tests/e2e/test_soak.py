"""A soak: half a minute of mixed traffic (tests/e2e/soak.py) against the embedded default and a
cluster-shaped process (PostgreSQL, Redis, SeaweedFS S3), both real `mmr serve` subprocesses.

Once warm (the first third: caches fill, pools open, thumbnail workers start), nothing may keep
growing: the last third's peak RSS stays within a few MiB of the middle third's, and so do open
file descriptors and database connections. `bench/soak.py` runs the same for longer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
import yaml

from tests.conftest import TEST_SECRET, cluster_raw_config, new_bucket
from tests.e2e.soak import MIB, Target, curve, soak, thirds
from tests.infra.postgres import temporary_database
from tests.infra.processes import MmrProcess, start_mmr
from tests.infra.seaweedfs import S3Server

SOAK_SECONDS = 30
"""Enough for thirds of five samples each (sampled every 2 s); `bench/soak.py` soaks for minutes."""
RSS_GROWTH_LIMIT = 24 * MIB
FD_GROWTH_LIMIT = 4
DB_GROWTH_LIMIT = 1


def _db_counter(url: str) -> tuple[str, str]:
    name = url.rsplit("/", 1)[1].split("?")[0]
    return url.replace("postgres://", "postgresql://", 1), name


@pytest.fixture(scope="module")
def targets(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, s3_server: S3Server
) -> Iterator[list[Target]]:
    workdir = tmp_path_factory.mktemp("soak")
    processes: list[MmrProcess] = []
    with temporary_database("mmr_soak") as database:
        raw = cluster_raw_config(workdir / "cluster", database, redis_url, s3_server,
                                 new_bucket(s3_server))
        config_path = workdir / "cluster.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        try:
            embedded = start_mmr("embedded", ["serve", "--data", str(workdir / "mmr-data")],
                                 workdir / "logs", cwd=workdir)
            cluster = start_mmr("cluster", ["serve", "--config", str(config_path)], workdir / "logs",
                                env={"MACHINE_ID": "0"})
            processes = [embedded, cluster]
            for process in processes:
                process.wait_healthy()
            token = embedded.wait_for_stdout("token:").split("token:", 1)[1].strip()
            pg_url, db_name = _db_counter(database)

            def connections() -> int:
                with psycopg.connect(pg_url, autocommit=True) as conn:
                    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                       "AND pid <> pg_backend_pid()", (db_name,)).fetchone()
                return int(row[0]) if row else 0

            yield [
                Target("embedded", embedded.url, embedded.port, embedded.process.pid, token),
                Target("cluster", cluster.url, cluster.port, cluster.process.pid, TEST_SECRET,
                       db_connections=connections),
            ]
        finally:
            for process in processes:
                process.stop()


@pytest.fixture(scope="module")
def soaked(targets: list[Target]) -> list[Target]:
    asyncio.run(soak(targets, SOAK_SECONDS))
    for target in targets:
        print(curve(target))
        print(f"  {target.name} outcomes: {dict(sorted(target.outcomes.items()))}")
    return targets


def _growth(target: Target, value: str) -> float:
    middle, last = thirds(target.samples)
    return max(getattr(s, value) for s in last) - max(getattr(s, value) for s in middle)


@pytest.mark.parametrize("index", [0, 1], ids=["embedded", "cluster"])
def test_rss_is_flat_once_warm(soaked: list[Target], index: int) -> None:
    target = soaked[index]
    assert _growth(target, "rss") <= RSS_GROWTH_LIMIT, curve(target)


@pytest.mark.parametrize("index", [0, 1], ids=["embedded", "cluster"])
def test_open_files_do_not_grow(soaked: list[Target], index: int) -> None:
    target = soaked[index]
    assert _growth(target, "fds") <= FD_GROWTH_LIMIT, curve(target)


def test_database_connections_do_not_grow(soaked: list[Target]) -> None:
    cluster = soaked[1]
    assert _growth(cluster, "db_connections") <= DB_GROWTH_LIMIT, curve(cluster)


@pytest.mark.parametrize("index", [0, 1], ids=["embedded", "cluster"])
def test_the_mix_ran_without_server_errors(soaked: list[Target], index: int) -> None:
    outcomes = soaked[index].outcomes
    assert sum(outcomes.values()) > 100, outcomes
    assert not [k for k in outcomes if k.split()[1].startswith("5")], outcomes
    for kind in ("upload 200", "download 2", "thumbnail 200", "oversized_head 431"):
        assert any(k.startswith(kind) for k in outcomes), (kind, outcomes)
