"""A rolling upgrade for real: the previous release (built from the commit CHANGELOG.md names)
beside this build on one PostgreSQL, Redis and S3, with a client running throughout.

The order is the CHANGELOG's: the old cluster runs; machine 0 is upgraded first (it migrates,
additively); then the pool, one process at a time, each new process added to the client's
rotation before the old one is taken out (as a Service's endpoints would) and stopped with
SIGTERM. While old and new pool processes serve side by side, media uploaded through either is
downloaded, thumbnailed and (for async uploads) completed through the other, both ways.

0.1.0 publishes its version nowhere (it had no leases), so a new pool process cannot read an old
machine 0's version; it sees the schema instead: still at 0.1.0's revision, it waits for machine 0
to migrate and then refuses, "upgrade machine 0 first".
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster.conftest import client
from tests.conftest import cluster_raw_config, new_bucket
from tests.infra.previous_release import Release, previous_release
from tests.infra.private_redis import PrivateRedis
from tests.infra.processes import MmrProcess, run_mmr, start_mmr
from tests.infra.seaweedfs import S3Server
from tests.services.thumbnail.helpers import unique_jpeg

POOL = ("upload", "download", "thumbnail")
# The old pool's MACHINE_IDs: 0.1.0 holds no leases, so they lie outside the `auto` ranges the
# new processes lease from (an operator upgrading from 0.1.0 keeps the two apart the same way).
OLD_IDS = {"upload": "1", "download": "2", "thumbnail": "3"}
REPORT = Path(__file__).parent.parent.parent / ".test-infra" / "upgrade.txt"


@pytest.fixture(scope="module")
def release() -> Release:
    return previous_release()


class Rotation:
    """The processes a client sends each service's requests to, in turn (a Service's endpoints)."""

    def __init__(self) -> None:
        self._members: dict[str, list[MmrProcess]] = {s: [] for s in POOL}
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def add(self, service: str, process: MmrProcess) -> None:
        with self._lock:
            self._members[service].append(process)

    def remove(self, service: str, process: MmrProcess) -> None:
        with self._lock:
            self._members[service].remove(process)

    def pick(self, service: str) -> MmrProcess:
        with self._lock:
            members = self._members[service]
            return members[next(self._turn) % len(members)]


def _path(mxc: str) -> str:
    return mxc.removeprefix("mxc://")


def _upload(node: MmrProcess, data: bytes) -> str:
    with client(node) as http:
        answer = http.post("/_matrix/media/v3/upload", content=data,
                           headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200, f"upload via {node.name}: {answer.status_code} {answer.text}"
    return str(answer.json()["content_uri"])


def _download(node: MmrProcess, mxc: str, wait_ms: int = 0) -> bytes:
    with client(node, timeout=60) as http:
        answer = http.get(f"/_matrix/client/v1/media/download/{_path(mxc)}",
                          params={"timeout_ms": wait_ms} if wait_ms else None)
    assert answer.status_code == 200, f"download via {node.name}: {answer.status_code} {answer.text}"
    return answer.content


def _thumbnail(node: MmrProcess, mxc: str, size: int) -> None:
    with client(node) as http:
        answer = http.get(f"/_matrix/client/v1/media/thumbnail/{_path(mxc)}",
                          params={"width": size, "height": size, "method": "scale"})
    assert answer.status_code == 200, f"thumbnail via {node.name}: {answer.status_code} {answer.text}"
    assert answer.headers["content-type"].startswith("image/")


Pick = Callable[[], MmrProcess]


def _async_upload(create_via: Pick, put_via: Pick, wait_via: Pick) -> None:
    """Create on one process, PUT on another, while a third's download waits for the content.

    Each request picks its process when it is sent, as an ingress would.
    """
    creator = create_via()
    with client(creator) as http:
        created = http.post("/_matrix/media/v1/create")
    assert created.status_code == 200, f"create via {creator.name}: {created.text}"
    mxc = created.json()["content_uri"]
    got: dict[str, object] = {}

    def wait() -> None:
        waiter_node = wait_via()
        got["waited via"] = waiter_node.name
        try:
            got["body"] = _download(waiter_node, mxc, wait_ms=30000)
        except BaseException as exc:  # reported by the caller's assert
            got["body"] = exc

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    putter = put_via()
    body = f"async via {creator.name}/{putter.name}".encode()
    with client(putter) as http:
        put = http.put(f"/_matrix/media/v3/upload/{_path(mxc)}", content=body,
                       headers={"Content-Type": "text/plain"})
    assert put.status_code == 200, f"PUT via {putter.name}: {put.status_code} {put.text}"
    waiter.join(60)
    assert got.get("body") == body, (creator.name, putter.name, got)


class Load:
    """A client running throughout: uploads, downloads, thumbnails, async uploads by rotation."""

    def __init__(self, rotation: Rotation) -> None:
        self.rotation = rotation
        self.sent = 0
        self.failed: list[str] = []
        self.uploaded: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upgrade-client")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(120)

    def _step(self, name: str, action: Callable[..., None], *args: Any) -> None:
        self.sent += 1
        try:
            action(*args)
        except (AssertionError, httpx.HTTPError) as exc:
            self.failed.append(f"{name}: {exc!r}"[:400])

    def _run(self) -> None:
        pick = self.rotation.pick
        for n in itertools.count():
            if self._stop.is_set():
                return
            self._step("upload", self._upload_one)
            if self.uploaded:
                mxc, sha = self.uploaded[n % len(self.uploaded)]
                self._step("download", self._download_one, mxc, sha)
                self._step("thumbnail", _thumbnail, pick("thumbnail"), mxc, 24)
            if n % 4 == 0:
                self._step("async upload", _async_upload, lambda: pick("upload"),
                           lambda: pick("upload"), lambda: pick("download"))

    def _upload_one(self) -> None:
        data = unique_jpeg(48, 36)
        mxc = _upload(self.rotation.pick("upload"), data)
        self.uploaded.append((mxc, hashlib.sha256(data).hexdigest()))

    def _download_one(self, mxc: str, sha: str) -> None:
        assert hashlib.sha256(_download(self.rotation.pick("download"), mxc)).hexdigest() == sha


def test_previous_release_and_this_one_roll_machine_zero_first_with_no_failed_request(
    tmp_path: Path, release: Release, database: str, s3_server: S3Server
) -> None:
    with PrivateRedis(tmp_path / "redis") as redis:
        # One configuration for every process, in the previous release's terms (it refuses keys
        # it does not know; this build reads them all).
        raw = cluster_raw_config(tmp_path, database, redis.url, s3_server, new_bucket(s3_server))
        config = tmp_path / "media-repo.yaml"
        config.write_text(yaml.safe_dump(raw))
        logs = tmp_path / "logs"
        migrated = run_mmr(["migrate", "--config", str(config)], mmr=release.mmr)
        assert migrated.returncode == 0, migrated.stderr
        started: list[MmrProcess] = []

        def start(name: str, service: str, machine_id: str | None, mmr: Sequence[str] | None,
                  config_file: Path = config) -> MmrProcess:
            # Not run from this checkout: its `services/` would shadow the old build's in the
            # thumbnailer's forkserver (which puts the working directory first on sys.path).
            process = start_mmr(name, ["serve", service, "--config", str(config_file)], logs,
                                env={"MACHINE_ID": machine_id}, mmr=mmr, cwd=tmp_path)
            started.append(process)
            return process

        try:
            old_zero = start("old-admin", "admin", None, release.mmr)
            old = {s: start(f"old-{s}", s, OLD_IDS[s], release.mmr) for s in POOL}
            for process in (old_zero, *old.values()):
                process.wait_healthy()
            _a_new_pool_process_beside_the_old_machine_zero_refuses(tmp_path, raw, start)

            rotation = Rotation()
            for service, process in old.items():
                rotation.add(service, process)
            with Load(rotation) as load:
                time.sleep(2)
                # Machine 0 first: the new admin migrates the old schema, additively, while the
                # old pool keeps serving on it.
                old_zero.stop()
                new_zero = start("new-admin", "admin", None, None)
                new_zero.wait_healthy()
                new = {s: start(f"new-{s}", s, "auto", None) for s in POOL}
                for service, process in new.items():
                    process.wait_healthy()
                    rotation.add(service, process)
                _old_and_new_serve_each_others_media(old, new)
                for service in POOL:  # the pool, one process at a time
                    rotation.remove(service, old[service])
                    time.sleep(1.0)  # as endpoints propagate; what it serves meanwhile completes
                    old[service].stop()  # SIGTERM: uvicorn finishes what is in flight
                time.sleep(2)
            assert load.sent > 20
            lost = [mxc for mxc, sha in load.uploaded
                    if hashlib.sha256(_download(new["download"], mxc)).hexdigest() != sha]
            REPORT.parent.mkdir(exist_ok=True)
            REPORT.write_text(
                f"rolling upgrade {release.version} ({release.commit[:7]}) -> this build: "
                f"requests sent {load.sent}, failed {len(load.failed)}, media uploaded "
                f"{len(load.uploaded)}, lost {len(lost)}\n")
            assert load.failed == []
            assert lost == []
        finally:
            for process in started:
                process.stop()


def _a_new_pool_process_beside_the_old_machine_zero_refuses(
    tmp_path: Path, raw: dict[str, Any], start: Callable[..., MmrProcess]
) -> None:
    impatient = tmp_path / "impatient.yaml"  # the same cluster; waits 2 s for machine 0 to migrate
    impatient.write_text(yaml.safe_dump({**raw, "database": {**raw["database"], "schemaWaitSeconds": 2}}))
    early = start("new-upload-early", "upload", "auto", None, impatient)
    assert early.wait_exit() != 0
    assert "upgrade machine 0 first" in early.stderr(), early.describe()


def _old_and_new_serve_each_others_media(old: dict[str, MmrProcess], new: dict[str, MmrProcess]) -> None:
    for one, other in ((old, new), (new, old)):
        data = unique_jpeg(120, 90)
        mxc = _upload(one["upload"], data)
        assert _download(other["download"], mxc) == data
        _thumbnail(other["thumbnail"], mxc, 64)
        _async_upload(_always(one["upload"]), _always(other["upload"]), _always(other["download"]))
        _async_upload(_always(one["upload"]), _always(one["upload"]), _always(other["download"]))


def _always(process: MmrProcess) -> Pick:
    return lambda: process


def test_the_previous_release_is_the_commit_the_changelog_names() -> None:
    from tests.infra.previous_release import full_commit, previous_release_in_changelog

    changelog = ("## 0.3.0 (unreleased; kind Y)\n\n## 0.2.0 (kind Y; cut from abc1234)\n\n"
                 "## 0.1.0 (kind X; cut from d4d070d)\n")
    assert previous_release_in_changelog(changelog, "0.3.0") == ("0.2.0", "abc1234")
    # This build's own release is not the one to upgrade from.
    assert previous_release_in_changelog(changelog, "0.2.0") == ("0.1.0", "d4d070d")
    with pytest.raises(AssertionError, match="names no released commit"):
        previous_release_in_changelog("## 0.1.0 (unreleased; kind X)\n", "0.1.0")

    # A checkout without the release's commit fails the upgrade test (no skip).
    with pytest.raises(AssertionError, match="has no such commit"):
        full_commit("0000000")
