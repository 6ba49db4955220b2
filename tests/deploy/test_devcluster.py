"""The dev cluster's parts that a fresh machine needs: a private PostgreSQL and Redis when the
machine has none running, MACHINE_IDs from each pool's range, and refusals before any start."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from prometheus_client import start_http_server

import mmr.devcluster.backing as backing
from mmr.devcluster.backing import create_database, start_private_postgres, stop_started
from mmr.devcluster.cluster import (
    DEFAULT_COUNTS,
    POOL_RANGES,
    ClusterError,
    Member,
    answers_as,
    plan_members,
)
from mmr.devcluster.procs import free_port, pid_alive
from mmr.serve import bind_socket
from tests.infra.processes import run_mmr


def test_a_private_postgresql_starts_serves_and_stops(tmp_path: Path) -> None:
    url, started = start_private_postgres(tmp_path / "pg")
    try:
        database = create_database(url, "mmr_private_check")
        with psycopg.connect(database.replace("postgres://", "postgresql://", 1)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert stop_started(started)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    shutil.rmtree(Path(started.data_dir).parent)


def test_a_private_redis_starts_when_the_machine_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backing, "MACHINE_REDIS", ("127.0.0.1", 1))  # nothing listens there
    url, started = backing.ensure_redis(tmp_path / "redis", None)
    assert started is not None and url.startswith("redis://127.0.0.1:")
    assert pid_alive(started.pid)
    assert stop_started(started)
    assert not pid_alive(started.pid)


def test_the_default_cluster_has_eight_processes_with_ids_from_their_ranges() -> None:
    members = plan_members(DEFAULT_COUNTS)
    assert len(members) == 8
    assert [m.machine_id for m in members if m.service == "upload"] == [16, 17]
    for member in members:
        assert member.machine_id in POOL_RANGES[member.service]
    assert len({m.port for m in members} | {m.metrics_port for m in members}) == 16


def test_a_bound_service_port_cannot_be_taken_by_a_metrics_listener_while_the_app_starts(
) -> None:
    # Both set SO_REUSEADDR; a socket that is only bound would let the metrics listener in.
    sock = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            start_http_server(sock.getsockname()[1], "127.0.0.1")
    finally:
        sock.close()


def test_a_member_port_answered_by_something_else_stops_the_start_naming_it() -> None:
    port = free_port()
    server, thread = start_http_server(port, "127.0.0.1")  # a metrics listener, not mmr
    try:
        with pytest.raises(ClusterError, match=f"port {port} of admin-0 is answered by something"):
            answers_as(Member("admin", 0, port, free_port()))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_pool_larger_than_its_range_is_refused() -> None:
    with pytest.raises(ClusterError, match=r"--preview must be 1\.\.256"):
        plan_members({**DEFAULT_COUNTS, "preview": 257})


def test_up_refuses_bad_counts_before_starting_anything(tmp_path: Path) -> None:
    done = run_mmr(["cluster", "up", "--dir", str(tmp_path / "c"), "--upload", "0"])
    assert done.returncode == 1
    assert "--upload must be 1..112" in done.stderr
    assert not (tmp_path / "c").exists()
    down = run_mmr(["cluster", "down", "--dir", str(tmp_path / "c")])
    assert down.returncode == 0 and "nothing running" in down.stdout
