"""SIGKILL machine 0 halfway through a datastore transfer and through an export, start it again:
the task completes, every object is moved (and every item exported) exactly once.

A real cluster of processes (`mmr serve admin|upload|download`) on PostgreSQL and Redis; media
goes to a file datastore and moves to SeaweedFS.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from tests.conftest import SERVER_NAME, TEST_SECRET, cluster_raw_config, new_bucket
from tests.infra.postgres import temporary_database
from tests.infra.processes import MmrProcess, start_mmr
from tests.infra.seaweedfs import S3Server
from tests.shared.archive.mmr_format import read_archive

ADMIN = "/_matrix/media/unstable/admin"
OBJECTS = 120
OBJECT_BYTES = 16 * 1024
PART_BYTES = 2 * OBJECT_BYTES


@dataclass
class Rig:
    workdir: Path
    config: Path
    database: str
    media_root: Path
    processes: dict[str, MmrProcess]

    def client(self, name: str) -> httpx.Client:
        return httpx.Client(base_url=self.processes[name].url, timeout=60,
                            headers={"Host": SERVER_NAME, "Authorization": f"Bearer {TEST_SECRET}"})

    runs: int = 0

    def start_admin(self) -> None:
        self.runs += 1
        process = start_mmr(f"admin-{self.runs}", ["serve", "admin", "--config", str(self.config)],
                            self.workdir / "logs", env={"MACHINE_ID": "0"})
        process.wait_healthy()
        self.processes["admin"] = process

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database.replace("postgres://", "postgresql://", 1)) as conn:
            return conn.execute(query).fetchall()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, redis_url: str, s3_server: S3Server) -> Iterator[Rig]:
    """One cluster for the module: the export runs first, then the transfer (of the same media)."""
    tmp_path = tmp_path_factory.mktemp("resume")
    with temporary_database("mmr_resume") as database:
        raw = cluster_raw_config(tmp_path, database, redis_url, s3_server, new_bucket(s3_server),
                                 archiving={"targetBytesPerPart": PART_BYTES})
        media_root = tmp_path / "files"
        raw["datastores"] = [
            {"id": "local", "type": "file", "forKinds": ["all"], "opts": {"path": str(media_root)}},
            {**raw["datastores"][0], "id": "s3", "forKinds": []},
        ]
        config = tmp_path / "media-repo.yaml"
        config.write_text(yaml.safe_dump(raw))
        rig = Rig(tmp_path, config, database, media_root, {})
        try:
            rig.start_admin()
            for name, machine in (("upload", 1), ("download", 2)):
                rig.processes[name] = start_mmr(name, ["serve", name, "--config", str(config)],
                                                tmp_path / "logs", env={"MACHINE_ID": str(machine)})
                rig.processes[name].wait_healthy()
            yield rig
        finally:
            for process in rig.processes.values():
                process.stop()


@pytest.fixture(scope="module")
def media(rig: Rig) -> dict[str, bytes]:
    """The uploaded media by ID: in the file datastore until the transfer test moves them."""
    def one(n: int) -> tuple[str, bytes]:
        data = hashlib.sha256(f"object {n}".encode()).digest() * (OBJECT_BYTES // 32)
        with rig.client("upload") as client:
            answer = client.post("/_matrix/media/v3/upload", content=data, params={"filename": f"{n}.bin"})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["content_uri"]).rsplit("/", 1)[1], data

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return dict(pool.map(one, range(OBJECTS)))


def kill_halfway(rig: Rig, task_id: int) -> dict[str, Any]:
    """SIGKILL machine 0 once the task is past half; the task as machine 0 left it."""
    with rig.client("admin") as client:
        deadline = time.monotonic() + 120
        while True:
            task = client.get(f"{ADMIN}/tasks/{task_id}").json()
            assert not task["is_finished"], f"finished before it could be killed: {task}"
            if task["total"] and task["done"] * 2 >= task["total"]:
                break
            assert time.monotonic() < deadline, task
            time.sleep(0.005)
    assert rig.processes["admin"].stop(signal.SIGKILL) == -signal.SIGKILL
    return task


def finished(rig: Rig, task_id: int) -> dict[str, Any]:
    with rig.client("admin") as client:
        deadline = time.monotonic() + 180
        while True:
            task = client.get(f"{ADMIN}/tasks/{task_id}").json()
            if task["is_finished"]:
                return dict(task)
            assert time.monotonic() < deadline, task
            time.sleep(0.1)


def test_an_export_killed_halfway_completes_exactly_once(rig: Rig, media: dict[str, bytes]) -> None:
    with rig.client("admin") as client:
        started = client.post(f"{ADMIN}/server/{SERVER_NAME}/export")
    assert started.status_code == 200, started.text
    export_id, task_id = started.json()["export_id"], started.json()["task_id"]
    kill_halfway(rig, task_id)
    rig.start_admin()
    task = finished(rig, task_id)
    assert task["error_message"] == "", task
    assert task["result"]["media"] == OBJECTS

    with rig.client("admin") as client:
        meta = client.get(f"{ADMIN}/export/{export_id}/metadata").json()
        parts = {p["name"]: client.get(f"{ADMIN}/export/{export_id}/part/{p['index']}").content
                 for p in meta["parts"]}
    names = [p["name"] for p in meta["parts"]]
    assert names == [f"export-part-{n}.tgz" for n in range(1, len(names))] + ["export-manifest.tgz"]
    archive = read_archive(parts)  # fails on any member archived twice
    assert len(archive.manifest["media"]) == OBJECTS
    assert len(archive.members) == OBJECTS
    for media_id, data in media.items():
        entry = archive.manifest["media"][f"mxc://{SERVER_NAME}/{media_id}"]
        assert archive.members[entry["file_name"]] == data
    # Parts are content-addressed: a part rebuilt after the kill left no stray object behind.
    stored = {p.name for p in rig.media_root.rglob("*") if p.is_file()}
    part_objects = {row[0].rsplit("/", 1)[1] for row in rig.sql("SELECT location FROM export_parts")}
    assert part_objects <= stored
    assert len(stored - part_objects) == OBJECTS, "only the media and the parts are stored"


def test_a_transfer_killed_halfway_completes_exactly_once(rig: Rig, media: dict[str, bytes]) -> None:
    with rig.client("admin") as client:
        started = client.post(f"{ADMIN}/datastores/local/transfer_to/s3")
    assert started.status_code == 200, started.text
    task_id = started.json()["task_id"]
    at_kill = kill_halfway(rig, task_id)
    assert at_kill["done"] < OBJECTS
    rig.start_admin()
    task = finished(rig, task_id)

    assert task["error_message"] == "", task
    assert task["result"]["moved"] == OBJECTS and task["result"]["failed"] == 0
    assert rig.sql(f"SELECT attempts FROM background_tasks WHERE id = {int(task_id)}") == [(2,)]
    assert rig.sql("SELECT DISTINCT datastore_id FROM media") == [("s3",)]
    assert rig.sql("SELECT count(*) FROM datastore_moves") == [(0,)]
    # Only the export's parts (archives are not media) are left in the file datastore.
    left = {p.name for p in rig.media_root.rglob("*") if p.is_file()}
    assert left == {row[0].rsplit("/", 1)[1] for row in rig.sql("SELECT location FROM export_parts")}
    with rig.client("download") as client:
        for media_id, data in media.items():
            answer = client.get(f"/_matrix/client/v1/media/download/{SERVER_NAME}/{media_id}")
            assert answer.status_code == 200 and answer.content == data, media_id
