"""Cluster membership: every process publishes itself; `GET .../admin/cluster` and `mmr cluster
status` show the live cluster and flag what breaks the operating rules."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shared.cluster.membership import cluster_problems
from tests.cluster.conftest import Start, WriteConfig, client, cluster_view
from tests.infra.processes import MmrProcess, run_mmr

POOLS = {"upload": 3, "download": 2, "thumbnail": 2, "preview": 2}
STATUS_OUTPUT = Path(__file__).parent.parent.parent / ".test-infra" / "cluster-status.txt"


def wait_members(admin: MmrProcess, count: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while len((view := cluster_view(admin))["members"]) < count:
        assert time.monotonic() < deadline, view
        time.sleep(0.5)
    return view


def test_a_ten_process_cluster_as_the_endpoint_and_the_cli_show_it(
    write_config: WriteConfig, start: Start
) -> None:
    config = write_config()
    admin = start("admin", "admin", config, None)
    for service, workers in POOLS.items():
        start(service, service, config, "auto", "--workers", str(workers))
    view = wait_members(admin, 1 + sum(POOLS.values()))
    ids = sorted((m["service"], m["machine_id"]) for m in view["members"])
    assert ids == sorted([("admin", 0), ("upload", 16), ("upload", 17), ("upload", 18),
                          ("download", 128), ("download", 129), ("thumbnail", 256),
                          ("thumbnail", 257), ("preview", 512), ("preview", 513)])
    assert view["problems"] == []
    member = view["members"][0]
    assert {"machine_id", "service", "version", "host", "pid", "started", "last_heartbeat",
            "config", "role"} <= set(member)
    assert "token" not in member and len({m["config"] for m in view["members"]}) == 1
    status = run_mmr(["cluster", "status", "--config", str(config)])
    assert status.returncode == 0, status.stderr
    STATUS_OUTPUT.parent.mkdir(exist_ok=True)
    STATUS_OUTPUT.write_text(status.stdout)
    assert "10 live processes" in status.stdout and "no problems found" in status.stdout
    for service in ("admin", *POOLS):
        assert service in status.stdout


def test_the_cli_and_endpoint_flag_a_process_with_another_config_and_a_missing_machine_0(
    write_config: WriteConfig, start: Start
) -> None:
    config = write_config()
    other = write_config(name="other.yaml", uploads={"maxBytes": 1234})
    upload = start("upload", "upload", config)
    start("odd", "upload", other)
    status = run_mmr(["cluster", "status", "--config", str(config)])
    assert status.returncode == 1  # an error: no machine 0
    assert "no-machine-0" in status.stdout and "no live process serves download" in status.stdout
    admin = start("admin", "admin", config, None)
    view = wait_members(admin, 3)
    kinds = [p["kind"] for p in view["problems"]]
    assert kinds.count("config-differs") == 1 and "no-machine-0" not in kinds
    assert upload.url  # still serving
    with client(admin, token=None) as anonymous:
        assert anonymous.get("/_matrix/media/unstable/admin/cluster").status_code == 401


def _member(**fields: Any) -> dict[str, Any]:
    return {"machine_id": 1, "service": "upload", "version": "1.2.0", "host": "a", "pid": 1,
            "role": "holder", "config": "c1", "file_datastores": [], **fields}


def test_problems_version_skew_services_and_file_datastores() -> None:
    everyone = [_member(machine_id=0, service="admin"), _member(),
                _member(machine_id=128, service="download", version="1.3.0"),
                _member(machine_id=256, service="thumbnail"), _member(machine_id=512, service="preview")]
    assert [p.kind for p in cluster_problems(everyone)] == ["version-skew"]
    assert cluster_problems(everyone)[0].severity == "warning"
    majors = [*everyone, _member(machine_id=19, version="2.0.0")]
    assert [p.severity for p in cluster_problems(majors) if p.kind == "version-skew"] == ["error"]
    store = [{"id": "local", "path": "/data"}]
    on_two_hosts = [_member(machine_id=0, service="embedded", file_datastores=store),
                    _member(host="b", file_datastores=store)]
    problems = cluster_problems(on_two_hosts)
    assert [p.kind for p in problems] == ["file-datastore-hosts"]
    assert "'local' is used from 2 hosts (a, b)" in problems[0].message
    standby_only = [_member(machine_id=0, service="admin", role="standby")]
    assert "no-machine-0" in [p.kind for p in cluster_problems(standby_only)]


def test_status_without_redis_says_so(tmp_path: Path) -> None:
    config = tmp_path / "embedded.yaml"
    config.write_text(f"database: {{sqlite: {tmp_path / 'x.db'}}}\n")
    status = run_mmr(["cluster", "status", "--config", str(config)])
    assert status.returncode == 2 and status.stderr.startswith("mmr: ")
