"""Archives and datastore transfers at size: a 2 GiB export and import (MiB/s, peak RSS of the
process doing the work) and a transfer of 1,000 objects from a file datastore to SeaweedFS with
downloads running the whole time (failed downloads must be 0).

    .venv/bin/python bench/archive_bench.py [--gib 2] [--objects 1000] [--object-kib 64]
                                            [--downloaders 4] [--part-mib 200]

Setup: a cluster on PostgreSQL and Redis: admin (machine 0: the admin API and the task runner),
upload (machine 1) and download (machine 2), with a file datastore `local` for every kind and an
S3 datastore `s3` (SeaweedFS, no kinds: a transfer target). The import goes into a second, fresh
mmr (the embedded default: SQLite, files), so every item is really written.

1. Transfer: `--objects` distinct objects are uploaded, then `datastores/local/transfer_to/s3`
   runs while `--downloaders` clients download random objects from the download process and
   compare every body; reported: objects/s, the downloads made and how many failed.
2. Export: `--gib` of media (32 MiB files of distinct content) is uploaded and
   `server/localhost/export` runs over all of the server's media (the transfer's objects too);
   reported: media MiB/s from the request to the task's end, and
   the admin process's RSS (idle, and peak sampled every 20 ms).
3. Import: the parts are downloaded to a folder, then sent to the fresh server (`import`,
   `import/{id}/part`..., `import/{id}/close`); reported: MiB/s from the first byte sent to the
   task's end, and that server's RSS.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench import rig  # noqa: E402
from tests.infra.postgres import temporary_database  # noqa: E402
from tests.infra.processes import MmrProcess, start_mmr  # noqa: E402
from tests.infra.redis_server import ensure_redis  # noqa: E402
from tests.infra.seaweedfs import start_seaweedfs  # noqa: E402

ADMIN = "/_matrix/media/unstable/admin"
MIB = 1024 * 1024
FILE_MIB = 32
BLOCK = os.urandom(MIB)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread; `idle` is taken before it starts."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle = int(statistics.median(rss_bytes(pid) for _ in range(5)))
        self.peak = self.idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def client(process: MmrProcess, timeout: float = 600) -> httpx.Client:
    return httpx.Client(base_url=process.url, timeout=timeout,
                        headers={"Host": rig.HOST, "Authorization": f"Bearer {rig.SECRET}"})


def wait_task(process: MmrProcess, task_id: int, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with client(process) as c:
        while True:
            task: dict[str, Any] = c.get(f"{ADMIN}/tasks/{task_id}").json()
            if task["is_finished"]:
                if task["error_message"]:
                    raise RuntimeError(f"task {task_id} failed: {task['error_message']}")
                return task
            if time.monotonic() > deadline:
                raise RuntimeError(f"task {task_id} still running: {task}")
            time.sleep(0.1)


def upload(process: MmrProcess, body: Any, name: str) -> str:
    with client(process) as c:
        answer = c.post("/_matrix/media/v3/upload", content=body, params={"filename": name},
                        headers={"Content-Type": "application/octet-stream"})
    answer.raise_for_status()
    return str(answer.json()["content_uri"]).rsplit("/", 1)[1]


def big_body(size_mib: int) -> Iterator[bytes]:
    """Distinct content (a unique first block), streamed, never held whole."""
    yield uuid.uuid4().bytes + BLOCK[16:]
    for _ in range(size_mib - 1):
        yield BLOCK


def start_cluster(work: Path, stack: ExitStack, part_mib: int) -> dict[str, MmrProcess]:
    pg = stack.enter_context(temporary_database("mmr_bench_archives"))
    s3 = start_seaweedfs(work / "seaweedfs")
    stack.callback(s3.stop)
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=bucket)
    config = rig.base_config(work, {}) | {
        "database": {"postgres": pg},
        "redis": {"enabled": True, "url": ensure_redis()},
        "archiving": {"targetBytesPerPart": part_mib * MIB},
        "datastores": [
            {"id": "local", "type": "file", "forKinds": ["all"], "opts": {"path": str(work / "files")}},
            {"id": "s3", "type": "s3", "forKinds": [], "opts": {
                "endpoint": s3.endpoint, "bucketName": bucket, "accessKeyId": s3.access_key,
                "accessSecret": s3.secret_key, "region": s3.region, "ssl": False, "pathStyle": True}},
        ],
    }
    path = rig.write_config(work / "config.yaml", config)
    processes = {"admin": rig.started(start_mmr("admin", ["serve", "admin", "--config", path],
                                                work / "logs", env={"MACHINE_ID": "0"}))}
    for name, machine in (("upload", 1), ("download", 2)):
        processes[name] = rig.started(start_mmr(name, ["serve", name, "--config", path], work / "logs",
                                                env={"MACHINE_ID": str(machine)}))
    for process in processes.values():
        stack.callback(process.stop)
    return processes


def bench_transfer(cluster: dict[str, MmrProcess], objects: int, object_kib: int, downloaders: int) -> None:
    def one(n: int) -> tuple[str, str]:
        data = hashlib.sha256(str(n).encode()).digest() * (object_kib * 32)
        return upload(cluster["upload"], data, f"{n}.bin"), hashlib.sha256(data).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        media = dict(pool.map(one, range(objects)))
    ids = list(media)
    stop = threading.Event()
    failures: list[str] = []
    counts = [0] * downloaders

    def download_loop(slot: int) -> None:
        with client(cluster["download"], timeout=60) as c:
            while not stop.is_set():
                media_id = random.choice(ids)
                try:
                    answer = c.get(f"/_matrix/client/v1/media/download/{rig.HOST}/{media_id}")
                    same = hashlib.sha256(answer.content).hexdigest() == media[media_id]
                    if answer.status_code != 200 or not same:
                        failures.append(f"{media_id}: {answer.status_code}")
                except httpx.HTTPError as exc:
                    failures.append(f"{media_id}: {exc!r}")
                counts[slot] += 1

    threads = [threading.Thread(target=download_loop, args=(i,)) for i in range(downloaders)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    before = sum(counts)
    started = time.monotonic()
    with client(cluster["admin"]) as c:
        answer = c.post(f"{ADMIN}/datastores/local/transfer_to/s3")
    answer.raise_for_status()
    task = wait_task(cluster["admin"], answer.json()["task_id"])
    elapsed = time.monotonic() - started
    during = sum(counts) - before
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    result = task["result"]
    print(f"transfer  {objects} objects of {object_kib} KiB, file -> SeaweedFS: {elapsed:.1f} s "
          f"({objects / elapsed:.0f} objects/s, incl. the 5 s delete grace); moved {result['moved']}, "
          f"failed {result['failed']}")
    print(f"          downloads during the transfer: {during} ({during / elapsed:.0f}/s, {downloaders} "
          f"clients); failed downloads: {len(failures)}")
    for failure in failures[:5]:
        print(f"          failure: {failure}")


def bench_export(cluster: dict[str, MmrProcess], gib: float, folder: Path) -> tuple[int, list[Path]]:
    files = max(1, int(gib * 1024 / FILE_MIB))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: upload(cluster["upload"], big_body(FILE_MIB), f"big{n}.bin"), range(files)))
    admin = cluster["admin"]
    # The export holds every item of the server, the transfer's objects too: count them all.
    with client(admin) as c:
        media_bytes = int(c.get(f"{ADMIN}/usage/{rig.HOST}").json()["raw_bytes"]["media"])
    with PeakRss(admin.process.pid) as rss:
        started = time.monotonic()
        with client(admin) as c:
            answer = c.post(f"{ADMIN}/server/{rig.HOST}/export")
        answer.raise_for_status()
        export_id = answer.json()["export_id"]
        task = wait_task(admin, answer.json()["task_id"])
        elapsed = time.monotonic() - started
    with client(admin) as c:
        meta = c.get(f"{ADMIN}/export/{export_id}/metadata").json()
    print(f"export    {media_bytes / MIB:.0f} MiB of media ({task['result']['media']} items) in "
          f"{len(meta['parts'])} parts: {elapsed:.1f} s = {media_bytes / MIB / elapsed:.0f} MiB/s; "
          f"admin RSS idle {rss.idle / MIB:.0f} MiB, peak {rss.peak / MIB:.0f} MiB "
          f"(+{(rss.peak - rss.idle) / MIB:.0f} MiB)")
    folder.mkdir()
    paths = []
    with client(admin) as c:
        for part in meta["parts"]:
            path = folder / part["name"]
            with c.stream("GET", f"{ADMIN}/export/{export_id}/part/{part['index']}") as answer, \
                    open(path, "wb") as out:
                for chunk in answer.iter_bytes(MIB):
                    out.write(chunk)
            paths.append(path)
    return media_bytes, paths


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(MIB):
            yield chunk


def bench_import(work: Path, paths: list[Path], media_bytes: int) -> None:
    with rig.mmr_embedded(work, {}) as server, PeakRss(server.process.pid) as rss:
        started = time.monotonic()
        with client(server) as c:
            first = c.post(f"{ADMIN}/import", content=file_chunks(paths[0]))
            first.raise_for_status()
            import_id = first.json()["import_id"]
            for path in paths[1:]:
                answer = c.post(f"{ADMIN}/import/{import_id}/part", content=file_chunks(path))
                if answer.status_code == 404:
                    break  # every item is in: the import ended by itself
                answer.raise_for_status()
            c.post(f"{ADMIN}/import/{import_id}/close")
        task = wait_task(server, first.json()["task_id"])
        elapsed = time.monotonic() - started
    result = task["result"]
    print(f"import    {media_bytes / MIB:.0f} MiB ({result['imported']} items imported, "
          f"{len(result['missing'])} missing) into a fresh embedded mmr: {elapsed:.1f} s = "
          f"{media_bytes / MIB / elapsed:.0f} MiB/s; its RSS idle {rss.idle / MIB:.0f} MiB, "
          f"peak {rss.peak / MIB:.0f} MiB (+{(rss.peak - rss.idle) / MIB:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--object-kib", type=int, default=64)
    parser.add_argument("--downloaders", type=int, default=4)
    parser.add_argument("--part-mib", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmr-archive-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        cluster = start_cluster(work / "cluster", stack, args.part_mib)
        bench_transfer(cluster, args.objects, args.object_kib, args.downloaders)
        media_bytes, paths = bench_export(cluster, args.gib, work / "parts")
        bench_import(work, paths, media_bytes)


if __name__ == "__main__":
    main()
