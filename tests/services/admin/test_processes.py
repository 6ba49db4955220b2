"""The admin service as real `mmr serve` processes on PostgreSQL, Redis and SeaweedFS:

* a quarantine on machine 0 takes effect at once in a thumbnail process that had the answer
  in memory (the change is announced over Redis);
* machine 0 SIGKILLed in the middle of a purge task resumes it when started again, and the
  task finishes exactly once: every item forgotten once, none missed, none counted twice.
"""

from __future__ import annotations

import hashlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shared.config import MmrConfig, parse_config
from shared.db.repositories.media import MediaRecord, insert_media
from shared.db.repositories.media_selection import MediaSelector, count_selected
from shared.db.repositories.tasks import get_task
from shared.runtime import Runtime
from shared.storage.keys import content_key
from tests.conftest import SERVER_NAME, TEST_SECRET, cluster_raw_config, new_bucket
from tests.infra.processes import MmrProcess, start_mmr
from tests.infra.seaweedfs import S3Server
from tests.services.admin.conftest import ADMIN_PREFIX
from tests.services.admin.helpers import png


@dataclass
class Processes:
    workdir: Path
    config_path: Path
    config: MmrConfig
    running: dict[str, MmrProcess]

    def start(self, service: str, machine_id: int) -> MmrProcess:
        process = start_mmr(f"{service}-{len(self.running)}",
                            ["serve", service, "--config", str(self.config_path)],
                            self.workdir / "logs", env={"MACHINE_ID": str(machine_id)})
        self.running[f"{service}-{len(self.running)}"] = process
        process.wait_healthy()
        return process

    def client(self, process: MmrProcess) -> httpx.Client:
        return httpx.Client(base_url=process.url, timeout=60, headers={
            "Host": SERVER_NAME, "Authorization": f"Bearer {TEST_SECRET}"})


@pytest.fixture
def processes(tmp_path: Path, fresh_pg: str, redis_url: str, s3_server: S3Server) -> Iterator[Processes]:
    raw = cluster_raw_config(tmp_path, fresh_pg, redis_url, s3_server, new_bucket(s3_server))
    path = tmp_path / "media-repo.yaml"
    path.write_text(yaml.safe_dump(raw))
    procs = Processes(tmp_path, path, parse_config(raw), {})
    try:
        yield procs
    finally:
        for process in procs.running.values():
            process.stop()


def test_a_quarantine_reaches_a_thumbnail_process_at_once(processes: Processes) -> None:
    admin = processes.start("admin", 0)
    upload = processes.start("upload", 1)
    thumbnail = processes.start("thumbnail", 2)
    with processes.client(upload) as http:
        made = http.post("/_matrix/media/v3/upload", content=png(7, size=400),
                         headers={"Content-Type": "image/png"})
    server, _, media_id = made.json()["content_uri"][len("mxc://"):].partition("/")
    path = f"/_matrix/client/v1/media/thumbnail/{server}/{media_id}"
    params = {"width": 64, "height": 64, "method": "crop"}
    with processes.client(thumbnail) as http:
        real = http.get(path, params=params)
        again = http.get(path, params=params)  # answered from the process's memory now
    assert real.status_code == again.status_code == 200
    assert again.content == real.content

    with processes.client(admin) as http:
        quarantined = http.post(f"{ADMIN_PREFIX}/quarantine/{server}/{media_id}")
    assert quarantined.json() == {"num_quarantined": 1}
    started = time.monotonic()
    with processes.client(thumbnail) as http:
        while True:
            after = http.get(path, params=params)
            if after.content != real.content or time.monotonic() - started > 3:
                break
            time.sleep(0.05)
    # Well before the 5 s the process keeps an answer on its own: the announcement did it.
    assert after.content != real.content, "the thumbnail process still serves quarantined media"
    assert time.monotonic() - started < 3


ITEMS = 1000
OBJECTS = 10


async def _seed_remote_media(rt: Runtime, tmp: Path) -> list[tuple[str, str]]:
    """ITEMS cached remote media sharing OBJECTS stored objects (dedupe); their (store, key)."""
    store = rt.datastores.for_kind("remote_media")
    objects = []
    for n in range(OBJECTS):
        data = b"remote object %d" % n
        sha = hashlib.sha256(data).hexdigest()
        file = tmp / f"obj{n}"
        file.write_bytes(data)
        stored = await store.put_file(content_key(sha), file, "application/octet-stream")
        objects.append((sha, stored.datastore_id, stored.location))
    async with rt.sessions() as session:
        for i in range(ITEMS):
            sha, datastore_id, location = objects[i % OBJECTS]
            await insert_media(session, MediaRecord(
                origin="remote.example", media_id=f"m{i:05d}", upload_name=None,
                content_type="application/octet-stream", user_id=None, sha256=sha, size_bytes=16,
                creation_ts=1000, datastore_id=datastore_id, location=location))
        await session.commit()
    return [(d, loc) for _, d, loc in objects]


def _task(http: httpx.Client, task_id: int) -> dict[str, Any]:
    response = http.get(f"{ADMIN_PREFIX}/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_machine_zero_killed_mid_task_resumes_it_once_when_restarted(
    processes: Processes, runtime_for: Any
) -> None:
    admin = processes.start("admin", 0)  # migrates the fresh database
    rt: Runtime = await runtime_for(processes.config, machine_id=9)
    objects = await _seed_remote_media(rt, processes.workdir)
    with processes.client(admin) as http:
        started = http.post(f"{ADMIN_PREFIX}/purge/server/remote.example",
                            params={"before_ts": 2000, "async": "true"})
        assert started.status_code == 202, started.text
        task_id = started.json()["task_id"]
        deadline = time.monotonic() + 60
        while True:
            status = _task(http, task_id)
            if 0 < status["done"] < ITEMS or status["is_finished"] or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    assert not status["is_finished"], "the purge finished before it could be interrupted"
    assert admin.stop(signal.SIGKILL) == -9
    interrupted_at = status["done"]

    restarted = processes.start("admin", 0)  # resumes every unfinished task at start
    with processes.client(restarted) as http:
        deadline = time.monotonic() + 120
        while not (status := _task(http, task_id))["is_finished"] and time.monotonic() < deadline:
            time.sleep(0.1)
        unfinished = http.get(f"{ADMIN_PREFIX}/tasks/unfinished").json()
    assert status["is_finished"], status
    assert status["error_message"] == ""
    assert (status["done"], status["total"]) == (ITEMS, ITEMS)
    affected = status["result"]["affected"]
    assert len(affected) == len(set(affected)) == ITEMS, "each item forgotten exactly once"
    assert status["result"]["total_removed"] == ITEMS
    assert all(t["task_id"] != task_id for t in unfinished)
    assert interrupted_at < ITEMS
    async with rt.sessions() as session:
        assert await count_selected(session, MediaSelector(origins=("remote.example",))) == 0
    for datastore_id, location in objects:
        assert not await rt.datastores.get(datastore_id).exists(location), "objects go with the last row"
    async with rt.sessions() as session:
        record = await get_task(session, task_id)
    assert record is not None and record.attempts == 2, "started once, resumed once"
