"""Faults with nothing lost: Redis, then S3, stopped for 10 s, and PostgreSQL restarted, under a
running client.

Downloads, uploads, cold and warm thumbnails, previews and inbound federation keep answering
(locks and caches fail open to the database and per-process singleflight, waits poll), `/readyz`
says `degraded` with 200, and once Redis is back every process uses it again by itself (pub/sub
wakes waiters).
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
import yaml

from tests.cluster.conftest import LEASE_SECONDS, Start, WriteConfig, client, machine_id
from tests.conftest import SERVER_NAME, cluster_raw_config, new_bucket
from tests.infra.federation_origin import FederationOrigin
from tests.infra.fixture_web import FixtureWebServer, page
from tests.infra.private_postgres import PrivatePostgres
from tests.infra.private_redis import PrivateRedis
from tests.infra.processes import MmrProcess, run_mmr
from tests.infra.seaweedfs import S3Server
from tests.infra.tcp_proxy import TcpProxy
from tests.services.thumbnail.helpers import unique_jpeg

OUTAGE_SECONDS = 10.0
# The default deny list without loopback: the test's federation origin listens on 127.0.0.1.
LOOPBACK_ALLOWED_DENY_LIST = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
SERVICES = ("admin", "upload", "download", "thumbnail", "preview")
REPORT = Path(__file__).parent.parent.parent / ".test-infra" / "fault-redis.txt"


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)

    def record(self, kind: str, ok: bool, detail: str) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1
        if not ok:
            self.failed.setdefault(kind, []).append(detail)


def _media_path(mxc: str) -> str:
    return mxc.removeprefix("mxc://")


Request = tuple[str, Callable[[], httpx.Response]]


def _requests(nodes: dict[str, MmrProcess], web: FixtureWebServer, stored: list[tuple[str, str]],
              uploaded: list[tuple[str, str]], counter: list[int],
              origin: FederationOrigin) -> list[Request]:
    n = counter[0] = counter[0] + 1
    mxc, _ = stored[n % len(stored)]
    data = unique_jpeg(64, 48)

    def do_upload() -> httpx.Response:
        with client(nodes["upload"]) as http:
            answer = http.post("/_matrix/media/v3/upload", content=data,
                               headers={"Content-Type": "image/jpeg"})
        if answer.status_code == 200:
            uploaded.append((answer.json()["content_uri"], hashlib.sha256(data).hexdigest()))
        return answer

    def thumb(width: int) -> Callable[[], httpx.Response]:
        def get() -> httpx.Response:
            with client(nodes["thumbnail"]) as http:
                return http.get(f"/_matrix/client/v1/media/thumbnail/{_media_path(mxc)}",
                                params={"width": width, "height": width, "method": "scale"})
        return get

    def download() -> httpx.Response:
        with client(nodes["download"]) as http:
            return http.get(f"/_matrix/client/v1/media/download/{_media_path(mxc)}")

    def preview() -> httpx.Response:
        with client(nodes["preview"]) as http:
            return http.get("/_matrix/client/v1/media/preview_url",
                            params={"url": web.url(f"/page?n={n}")})

    def inbound_federation() -> httpx.Response:
        # Another server fetching our media: its X-Matrix signature is checked with its keys
        # (cached in Redis; fetched again from it while Redis is away).
        uri = f"/_matrix/federation/v1/media/download/{mxc.rsplit('/', 1)[1]}"
        with httpx.Client(base_url=nodes["download"].url, timeout=30) as http:
            return http.get(uri, headers={"Host": SERVER_NAME,
                                          **origin.authorization(SERVER_NAME, uri)})

    return [("download", download), ("upload", do_upload), ("thumbnail-warm", thumb(32)),
            ("thumbnail-cold", thumb(40 + n)), ("preview", preview),
            ("federation", inbound_federation)]


def test_redis_stopped_for_10_seconds_loses_nothing(
    tmp_path: Path, write_config: WriteConfig, start: Start, test_tls: tuple[Path, Path]
) -> None:
    with (PrivateRedis(tmp_path / "redis") as redis, FixtureWebServer() as web,
          FederationOrigin(*test_tls) as origin):
        web.routes["/page"] = page("<html><head><title>Outage</title></head><body>still here</body></html>")
        config = write_config(
            redis=redis.url, cluster={"leaseSeconds": 30},
            federation={"caFile": str(test_tls[0]), "deniedNetworks": LOOPBACK_ALLOWED_DENY_LIST},
            urlPreviews={"enabled": True, "allowedNetworks": ["127.0.0.1/32"], "disallowedNetworks": []},
            thumbnails={"dynamicSizing": True})
        nodes = {s: start(s, s, config, None if s == "admin" else "auto") for s in SERVICES}
        stored: list[tuple[str, str]] = []
        for _ in range(4):
            data = unique_jpeg(200, 150)
            with client(nodes["upload"]) as http:
                answer = http.post("/_matrix/media/v3/upload", content=data,
                                   headers={"Content-Type": "image/jpeg"})
            assert answer.status_code == 200, answer.text
            stored.append((answer.json()["content_uri"], hashlib.sha256(data).hexdigest()))
        tally, uploaded, counter = Tally(), list(stored), [0]
        for kind, request in _requests(nodes, web, stored, uploaded, counter, origin):
            answer = request()
            assert answer.status_code == 200, (kind, answer.text)  # all warm before the outage

        redis.stop()
        began = time.monotonic()
        ready: list[tuple[int, str]] = []
        while time.monotonic() - began < OUTAGE_SECONDS:
            for kind, request in _requests(nodes, web, stored, uploaded, counter, origin):
                try:
                    answer = request()
                    tally.record(kind, answer.status_code == 200, f"{answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    tally.record(kind, False, repr(exc))
            for node in nodes.values():
                probe = httpx.get(node.url + "/readyz", timeout=10)
                ready.append((probe.status_code, probe.json().get("status", "?")))
        redis.start()

        # Back: pub/sub wakes a download waiting for an async upload on another process.
        deadline = time.monotonic() + 30
        woke_after = _async_upload_wakes_a_waiter(nodes, deadline)
        lost = [mxc for mxc, sha in uploaded if _sha_of(nodes["download"], mxc) != sha]
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(
            f"redis stopped {OUTAGE_SECONDS:.0f}s: sent {sum(tally.sent.values())} {tally.sent}, "
            f"failed {sum(len(v) for v in tally.failed.values())}, lost media {len(lost)} of "
            f"{len(uploaded)}; readyz {sorted(set(ready))}; pub/sub wake after restart {woke_after:.2f}s\n")
        assert tally.failed == {}, tally.failed
        assert lost == []
        assert all(code == 200 for code, _ in ready) and ("degraded" in {s for _, s in ready})
        assert woke_after < 5.0


def _sha_of(node: MmrProcess, mxc: str) -> str:
    with client(node) as http:
        answer = http.get(f"/_matrix/client/v1/media/download/{_media_path(mxc)}")
    return hashlib.sha256(answer.content).hexdigest() if answer.status_code == 200 else answer.text


def _async_upload_wakes_a_waiter(nodes: dict[str, MmrProcess], deadline: float) -> float:
    """Seconds between the PUT and the waiting download's answer, once pub/sub is back."""
    while True:
        with client(nodes["upload"]) as http:
            created = http.post("/_matrix/media/v1/create")
        if created.status_code == 200:
            break
        assert time.monotonic() < deadline, created.text
        time.sleep(0.5)
    mxc = created.json()["content_uri"]
    result: dict[str, float] = {}

    def wait() -> None:
        with client(nodes["download"], timeout=60) as http:
            answer = http.get(f"/_matrix/client/v1/media/download/{_media_path(mxc)}",
                              params={"timeout_ms": 30000})
        result["answered"] = time.monotonic()
        result["status"] = answer.status_code

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)  # the download is waiting
    with client(nodes["upload"]) as http:
        put_at = time.monotonic()
        answer = http.put(f"/_matrix/media/v3/upload/{_media_path(mxc)}", content=b"late bytes",
                          headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text
    waiter.join(timeout=60)
    assert result.get("status") == 200, result
    return result["answered"] - put_at


def test_s3_stopped_for_10_seconds_fails_only_what_needs_it_clearly(
    tmp_path: Path, write_config: WriteConfig, start: Start, s3_server: S3Server
) -> None:
    host, _, port = s3_server.endpoint.removeprefix("http://").partition(":")
    with TcpProxy(host, int(port)) as proxy:
        config = write_config()
        raw = yaml.safe_load(config.read_text())
        raw["datastores"][0]["opts"]["endpoint"] = f"http://{proxy.address}"
        config.write_text(yaml.safe_dump(raw))
        nodes = {s: start(s, s, config, None if s == "admin" else "auto")
                 for s in ("admin", "upload", "download")}
        before = unique_jpeg(64, 48)
        with client(nodes["upload"]) as http:
            stored = http.post("/_matrix/media/v3/upload", content=before,
                               headers={"Content-Type": "image/jpeg"}).json()["content_uri"]
        proxy.down()
        began, outcomes = time.monotonic(), Tally()
        while time.monotonic() - began < OUTAGE_SECONDS:
            with client(nodes["upload"], timeout=60) as http:
                up = http.post("/_matrix/media/v3/upload", content=unique_jpeg(64, 48),
                               headers={"Content-Type": "image/jpeg"})
                config_answer = http.get("/_matrix/media/v3/config")
            with client(nodes["download"], timeout=60) as http:
                down = http.get(f"/_matrix/client/v1/media/download/{_media_path(stored)}")
            for kind, answer in (("upload", up), ("download", down)):
                clear = answer.status_code in (502, 503) and "errcode" in answer.json()
                outcomes.record(kind, clear, f"{answer.status_code} {answer.text[:200]}")
            outcomes.record("config", config_answer.status_code == 200, config_answer.text[:200])
        proxy.up()
        deadline = time.monotonic() + 30
        while True:
            with client(nodes["upload"]) as http:
                after = http.post("/_matrix/media/v3/upload", content=unique_jpeg(64, 48),
                                  headers={"Content-Type": "image/jpeg"})
            if after.status_code == 200:
                break
            assert time.monotonic() < deadline, after.text
            time.sleep(0.5)
        assert _sha_of(nodes["download"], stored) == hashlib.sha256(before).hexdigest()
        dangling = _rows_without_objects(config, s3_server)
        with REPORT.open("a") as report:
            report.write(
                f"s3 stopped {OUTAGE_SECONDS:.0f}s: sent {sum(outcomes.sent.values())} "
                f"{outcomes.sent}, unclear failures {sum(len(v) for v in outcomes.failed.values())}"
                f", records without objects {len(dangling)}\n")
        assert outcomes.failed == {}, outcomes.failed
        assert dangling == []


def _rows_without_objects(config: Path, s3_server: S3Server) -> list[str]:
    raw = yaml.safe_load(config.read_text())
    engine = sa.create_engine(raw["database"]["postgres"].replace("postgres://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        locations = [row[0] for row in conn.execute(sa.text("SELECT location FROM media"))]
    engine.dispose()
    bucket = raw["datastores"][0]["opts"]["bucketName"]
    s3 = s3_server.client()
    missing = []
    for location in locations:
        try:
            s3.head_object(Bucket=bucket, Key=location)
        except Exception:
            missing.append(location)
    return missing


def test_an_upload_process_killed_mid_upload_leaves_nothing_behind(
    tmp_path: Path, write_config: WriteConfig, start: Start
) -> None:
    temp = tmp_path / "tmp"  # repo.tempPath of write_config, shared by the processes here
    config = write_config()
    start("admin", "admin", config, None)
    doomed, survivor = start("up-1", "upload", config), start("up-2", "upload", config)
    machine_id_of_doomed = machine_id(doomed)
    sent = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for _ in range(200):
            yield b"x" * 65536
            sent.set()
            time.sleep(0.05)

    failure: dict[str, BaseException] = {}

    def upload_to_doomed() -> None:
        try:
            with client(doomed, timeout=60) as http:
                http.post("/_matrix/media/v3/upload", content=slow_body(),
                          headers={"Content-Type": "application/octet-stream"})
        except httpx.HTTPError as exc:
            failure["error"] = exc

    uploader = threading.Thread(target=upload_to_doomed)
    uploader.start()
    assert sent.wait(30)
    time.sleep(1.0)
    assert list(temp.glob("spool-*.part")), "the upload should be spooling"
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait()
    uploader.join(60)
    assert "error" in failure  # the client saw the connection fail
    assert _media_rows(config) == 0
    # Its successor: the same (auto) machine ID once the dead one's lease lapsed, which removes
    # what its predecessor left at start.
    time.sleep(LEASE_SECONDS + 1)
    successor = start("up-3", "upload", config)
    assert machine_id(successor) == machine_id_of_doomed
    assert list(temp.glob("spool-*.part")) == []
    data = unique_jpeg(32, 32)
    with client(survivor) as http:
        retried = http.post("/_matrix/media/v3/upload", content=data,
                            headers={"Content-Type": "image/jpeg"})
    assert retried.status_code == 200, retried.text
    assert _media_rows(config) == 1


def _media_rows(config: Path) -> int:
    raw = yaml.safe_load(config.read_text())
    engine = sa.create_engine(raw["database"]["postgres"].replace("postgres://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        count = int(conn.execute(sa.text("SELECT count(*) FROM media")).scalar_one())
    engine.dispose()
    return count


PG_DOWN_SECONDS = 5.0


def test_postgresql_restarted_fails_only_what_needs_it_clearly_and_resumes(
    tmp_path: Path, redis_url: str, s3_server: S3Server, start: Start
) -> None:
    with PrivatePostgres() as postgres:
        database = postgres.url(postgres_database := "mmr_restart")
        postgres.create_database(postgres_database)
        raw = cluster_raw_config(tmp_path, database, redis_url, s3_server, new_bucket(s3_server))
        raw["cluster"] = {"leaseSeconds": 30}
        config = tmp_path / "media-repo.yaml"
        config.write_text(yaml.safe_dump(raw))
        migrated = run_mmr(["migrate", "--config", str(config)])
        assert migrated.returncode == 0, migrated.stderr
        nodes = {s: start(s, s, config, None if s == "admin" else "auto")
                 for s in ("admin", "upload", "download", "thumbnail")}
        before = unique_jpeg(64, 48)
        with client(nodes["upload"]) as http:
            answer = http.post("/_matrix/media/v3/upload", content=before,
                               headers={"Content-Type": "image/jpeg"})
        assert answer.status_code == 200, answer.text
        stored = answer.json()["content_uri"]
        uploaded = [(stored, hashlib.sha256(before).hexdigest())]
        outcomes, statuses = Tally(), Counter[str]()

        def round_of_requests() -> None:
            data = unique_jpeg(48, 36)
            with client(nodes["upload"], timeout=60) as http:
                up = http.post("/_matrix/media/v3/upload", content=data,
                               headers={"Content-Type": "image/jpeg"})
            if up.status_code == 200:
                uploaded.append((up.json()["content_uri"], hashlib.sha256(data).hexdigest()))
            with client(nodes["download"], timeout=60) as http:
                down = http.get(f"/_matrix/client/v1/media/download/{_media_path(stored)}")
            with client(nodes["thumbnail"], timeout=60) as http:
                thumb = http.get(f"/_matrix/client/v1/media/thumbnail/{_media_path(stored)}",
                                 params={"width": 32, "height": 32, "method": "scale"})
            for kind, answer in (("upload", up), ("download", down), ("thumbnail", thumb)):
                clear = answer.status_code == 200 or (
                    answer.status_code in (502, 503) and "errcode" in answer.json())
                outcomes.record(kind, clear, f"{answer.status_code} {answer.text[:200]}")
                statuses[f"{kind} {answer.status_code}"] += 1

        round_of_requests()
        postgres.stop()
        began = time.monotonic()
        while time.monotonic() - began < PG_DOWN_SECONDS:
            round_of_requests()
        postgres.start()
        resumed_after = _until_all_answer(nodes, stored)
        for _ in range(3):
            round_of_requests()
        lost = [mxc for mxc, sha in uploaded if _sha_of(nodes["download"], mxc) != sha]
        dangling = _rows_without_objects(config, s3_server)
        with REPORT.open("a") as report:
            report.write(
                f"postgresql stopped {PG_DOWN_SECONDS:.0f}s and restarted: sent "
                f"{sum(outcomes.sent.values())} {outcomes.sent}, unclear failures "
                f"{sum(len(v) for v in outcomes.failed.values())}, answers "
                f"{dict(sorted(statuses.items()))}, lost media {len(lost)} "
                f"of {len(uploaded)}, records without objects {len(dangling)}, every service "
                f"answering {resumed_after:.1f}s after the restart\n")
        assert outcomes.failed == {}, outcomes.failed
        assert statuses["upload 503"] > 0  # an upload needs the database: refused while it is down
        assert lost == [] and dangling == []


def _until_all_answer(nodes: dict[str, MmrProcess], stored: str, within: float = 30) -> float:
    """Seconds until upload, download and thumbnail all answer 200 again, by themselves."""
    began = time.monotonic()
    while True:
        with client(nodes["upload"]) as http:
            up = http.post("/_matrix/media/v3/upload", content=b"back",
                           headers={"Content-Type": "text/plain"}).status_code
        with client(nodes["download"]) as http:
            down = http.get(f"/_matrix/client/v1/media/download/{_media_path(stored)}").status_code
        with client(nodes["thumbnail"]) as http:
            thumb = http.get(f"/_matrix/client/v1/media/thumbnail/{_media_path(stored)}",
                             params={"width": 33, "height": 33, "method": "scale"}).status_code
        if (up, down, thumb) == (200, 200, 200):
            return time.monotonic() - began
        assert time.monotonic() - began < within, (up, down, thumb)
        time.sleep(0.25)
