"""`kill -9` mid-upload, then a restart: nothing the crash left behind survives the restart.

Real `mmr` subprocesses, killed with SIGKILL while a 200 MiB upload streams in (its spool file
growing in `repo.tempPath`). Besides the spool, each crash is given what a kill a moment later
would have left, named as the dead process names it: a half-stored `.tmp` object in the file
datastore, an object stored without its row, an S3 multipart upload never completed. After the
restart the temp folder, the datastore and the bucket hold exactly what rows reference.

* the embedded default (`mmr serve --data`), restarted on the same folder;
* a cluster (admin machine 0, upload machine 1; PostgreSQL, Redis, and either SeaweedFS S3 or
  a file datastore the processes share): the upload process is killed and restarted, then
  machine 0's start round sweeps the bucket or the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from shared.storage.keys import content_key
from shared.storage.leftovers import TempOwner
from tests.conftest import SERVER_NAME, TEST_SECRET, cluster_raw_config, new_bucket
from tests.infra.postgres import temporary_database
from tests.infra.processes import MmrProcess, run_mmr, start_mmr
from tests.infra.seaweedfs import S3Server

MIB = 1024 * 1024
UPLOAD_MIB = 200
UPLOAD = "/_matrix/media/v3/upload"
FIGURES: dict[str, int] = {}


def _slow_upload(url: str, token: str, stop: threading.Event) -> None:
    """POST 200 MiB in 1 MiB chunks, slowly, until the server dies under it."""

    def body() -> Iterator[bytes]:
        for index in range(UPLOAD_MIB):
            if stop.is_set():
                return
            yield os.urandom(1024) * 1024 if index % 2 else b"\x00" * MIB
            time.sleep(0.02)

    with contextlib.suppress(httpx.HTTPError):  # the server is killed: what this test is about
        httpx.post(url + UPLOAD, content=body(), timeout=120,
                   headers={"Authorization": f"Bearer {token}", "Host": SERVER_NAME,
                            "Content-Type": "application/octet-stream"})


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def _kill_mid_upload(process: MmrProcess, machine_id: int, temp_dir: Path, token: str) -> TempOwner:
    """SIGKILL `process` once its spool has passed 20 MiB; the dead process's temp-name owner."""
    info = psutil.Process(process.process.pid)
    owner = TempOwner(machine_id, info.pid, int(info.create_time() * 100))
    stop = threading.Event()
    uploader = threading.Thread(target=_slow_upload, args=(process.url, token, stop), daemon=True)
    uploader.start()
    deadline = time.monotonic() + 60
    while _bytes(_files(temp_dir)) < 20 * MIB:
        assert time.monotonic() < deadline, "the upload never spooled 20 MiB"
        time.sleep(0.05)
    process.process.send_signal(signal.SIGKILL)
    process.process.wait()
    stop.set()
    uploader.join(timeout=30)
    return owner


def _half_stored_object(media_root: Path, owner: TempOwner, size: int = 3 * MIB) -> Path:
    """What the file datastore leaves when killed between writing a temp object and its rename."""
    digest = hashlib.sha256(os.urandom(32)).hexdigest()
    target = media_root / content_key(digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{owner.tag}-{os.urandom(16).hex()}.tmp"
    partial.write_bytes(os.urandom(size))
    return partial


def _old(path: Path, hours: float = 12) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def _unreferenced_object(media_root: Path, size: int = 2 * MIB) -> Path:
    """Bytes stored under their content key whose row was never committed (killed between)."""
    data = os.urandom(size)
    path = media_root / content_key(hashlib.sha256(data).hexdigest())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    _old(path)
    return path


def _wait_until(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not swept in time"
        time.sleep(0.1)


@dataclass
class Embedded:
    workdir: Path

    @property
    def data(self) -> Path:
        return self.workdir / "mmr-data"

    def start(self, name: str) -> tuple[MmrProcess, str]:
        process = start_mmr(name, ["serve", "--data", str(self.data)], self.workdir / "logs",
                            cwd=self.workdir)
        process.wait_healthy()
        token = process.wait_for_stdout("token:").split("token:", 1)[1].strip()
        return process, token


def test_embedded_default_sigkill_mid_upload_leaves_nothing_after_restart(tmp_path: Path) -> None:
    embedded = Embedded(tmp_path)
    first, token = embedded.start("first")
    temp_dir, media_root = embedded.data / "tmp", embedded.data / "media"
    kept = httpx.post(first.url + UPLOAD, content=b"kept media", timeout=30,
                      headers={"Authorization": f"Bearer {token}"})
    assert kept.status_code == 200, kept.text
    owner = _kill_mid_upload(first, 0, temp_dir, token)
    partial = _half_stored_object(media_root, owner)
    orphan = _unreferenced_object(media_root)
    left = [*_files(temp_dir), partial, orphan]
    FIGURES["embedded: bytes left by the kill"] = _bytes(left)
    assert _bytes(_files(temp_dir)) >= 20 * MIB

    second, token = embedded.start("second")
    try:
        # The temp folder and partial objects are swept before the server listens; the orphan
        # by machine 0's first sweep round, moments later.
        assert _files(temp_dir) == []
        assert not partial.exists()
        _wait_until(lambda: not orphan.exists())
        FIGURES["embedded: bytes left after restart"] = _bytes(_files(temp_dir)) + sum(
            p.stat().st_size for p in _files(media_root) if p.name.startswith("."))
        assert FIGURES["embedded: bytes left after restart"] == 0
        # What rows reference is still there and served.
        mxc = kept.json()["content_uri"].removeprefix("mxc://")
        got = httpx.get(f"{second.url}/_matrix/client/v1/media/download/{mxc}",
                        headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 200 and got.content == b"kept media"
    finally:
        second.stop()
    print(FIGURES)


def test_a_live_process_with_the_same_machine_id_keeps_its_files(tmp_path: Path) -> None:
    """Only dead owners' files go: one of this (live) test process, tagged machine 0, stays."""
    embedded = Embedded(tmp_path)
    temp_dir = embedded.data / "tmp"
    temp_dir.mkdir(parents=True)
    live = temp_dir / f"spool-{TempOwner.current(0).tag}-live.part"
    other_machine = temp_dir / "spool-m7-p1-s1-other.part"
    for path in (live, other_machine):
        path.write_bytes(b"x" * 1024)
    process, _ = embedded.start("same-id")
    process.stop()
    assert live.exists() and other_machine.exists()


def _s3_keys(s3: S3Server, bucket: str) -> set[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _multipart_uploads(s3: S3Server, bucket: str) -> list[dict[str, object]]:
    return list(s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


@pytest.mark.parametrize("datastore", ["s3", "file"])
def test_cluster_sigkill_mid_upload_leaves_nothing_after_restart(
    tmp_path: Path, redis_url: str, s3_server: S3Server, datastore: str
) -> None:
    bucket = new_bucket(s3_server)
    media_root = tmp_path / "media"
    with temporary_database("mmr_crash_leftovers") as database:
        # Grace 0: in this test nothing is in flight when machine 0 sweeps.
        raw = cluster_raw_config(tmp_path, database, redis_url, s3_server, bucket,
                                 orphanSweep={"graceHours": 0})
        if datastore == "file":  # a folder every process shares (a volume), not a bucket
            raw["datastores"] = [{"id": "shared", "type": "file", "forKinds": ["all"],
                                  "opts": {"path": str(media_root)}}]
        # The killed process's MACHINE_ID lease must lapse before the ID can be reused.
        raw["cluster"] = {"leaseSeconds": 3}
        config_path = tmp_path / "media-repo.yaml"
        config_path.write_text(yaml.safe_dump(raw))
        assert run_mmr(["migrate", "--config", str(config_path)]).returncode == 0
        temp_dir = tmp_path / "tmp"

        def start(service: str, machine: int, name: str) -> MmrProcess:
            process = start_mmr(name, ["serve", service, "--config", str(config_path)],
                                tmp_path / "logs", env={"MACHINE_ID": str(machine)})
            process.wait_healthy()
            return process

        def stored() -> set[str]:
            if datastore == "s3":
                return _s3_keys(s3_server, bucket)
            return {str(p.relative_to(media_root)) for p in _files(media_root)}

        upload = start("upload", 1, "upload-1")
        kept = httpx.post(upload.url + UPLOAD, content=b"kept media", timeout=30,
                          headers={"Authorization": f"Bearer {TEST_SECRET}", "Host": SERVER_NAME})
        assert kept.status_code == 200, kept.text
        referenced = stored()
        owner = _kill_mid_upload(upload, 1, temp_dir, TEST_SECRET)
        if datastore == "s3":
            # What a kill during the S3 upload would have left: an orphan and unfinished parts.
            client = s3_server.client()
            orphan_data = os.urandom(2 * MIB)
            orphan_key = content_key(hashlib.sha256(orphan_data).hexdigest())
            client.put_object(Bucket=bucket, Key=orphan_key, Body=orphan_data)
            parts_key = content_key(hashlib.sha256(os.urandom(8)).hexdigest())
            multipart = client.create_multipart_upload(Bucket=bucket, Key=parts_key)
            client.upload_part(Bucket=bucket, Key=parts_key, UploadId=multipart["UploadId"],
                               PartNumber=1, Body=os.urandom(5 * MIB))
            left_in_store = 7 * MIB
        else:
            # A half-stored object of the killed machine 1, and an object without its row.
            left_in_store = _bytes([_half_stored_object(media_root, owner),
                                    _unreferenced_object(media_root)])
        FIGURES[f"cluster ({datastore}): bytes left by the kill"] = (
            _bytes(_files(temp_dir)) + left_in_store)
        assert _bytes(_files(temp_dir)) >= 20 * MIB

        time.sleep(3.5)  # past the dead process's lease
        restarted = start("upload", 1, "upload-1-again")
        admin = start("admin", 0, "admin-0")
        try:
            assert _files(temp_dir) == []
            _wait_until(lambda: stored() == referenced
                        and (datastore != "s3" or not _multipart_uploads(s3_server, bucket)))
            left = _bytes(_files(temp_dir))
            if datastore == "file":
                left += _bytes([p for p in _files(media_root)
                                if str(p.relative_to(media_root)) not in referenced])
            FIGURES[f"cluster ({datastore}): bytes left after restart"] = left
            assert left == 0
        finally:
            admin.stop()
            restarted.stop()
    print(FIGURES)
