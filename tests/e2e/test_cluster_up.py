"""`mmr cluster up` as a newcomer runs it: eight processes behind nginx on PostgreSQL, Redis and
a SeaweedFS it starts itself, then every Matrix media flow through nginx, each process's metrics
showing that traffic, a stopped pool answered as a Matrix error, and `down` stopping it all.
"""

from __future__ import annotations

import io
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from mmr.devcluster.cluster import POOL_RANGES, ClusterState
from mmr.devcluster.procs import pid_alive, stop_pid
from tests.infra.fixture_web import FixtureWebServer, page
from tests.infra.postgres import admin_url
from tests.infra.processes import run_mmr

SERVER = "localhost"
# Eight processes start at once: on a loaded 2-core machine that can take minutes.
pytestmark = pytest.mark.timeout(600)

PAGE = b"""<html><head><title>t</title><meta property="og:title" content="Cluster page">
<meta property="og:description" content="Previewed through nginx"></head><body>x</body></html>"""


@dataclass
class UpCluster:
    folder: Path
    state: ClusterState
    stdout: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.state.url, timeout=60,
                            headers={"Authorization": f"Bearer {self.state.token}"})

    def metric(self, service: str, name: str) -> float:
        """`name` summed over every process of `service` (all label sets)."""
        total = 0.0
        for member in (m for m in self.state.members if m.service == service):
            text = httpx.get(f"http://127.0.0.1:{member.metrics_port}/metrics", timeout=10).text
            total += sum(sample.value for family in text_string_to_metric_families(text)
                         for sample in family.samples if sample.name == name)
        return total


@pytest.fixture(scope="module")
def web() -> Iterator[FixtureWebServer]:
    with FixtureWebServer() as server:
        server.routes["/page"] = page(PAGE)
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[UpCluster]:
    folder = tmp_path_factory.mktemp("cluster-up")
    extra = folder.parent / f"{folder.name}-extra.yaml"
    # Previews of the loopback test page, and no rate limit in the way of the test's requests.
    extra.write_text(yaml.safe_dump({
        "urlPreviews": {"allowedNetworks": ["127.0.0.1/32"], "disallowedNetworks": []},
        "rateLimit": {"enabled": False},
    }))
    state: ClusterState | None = None
    try:
        done = run_mmr(["cluster", "up", "--dir", str(folder), "--port", "0", "--redis",
                        redis_url, "--postgres", admin_url(), "--extra-config", str(extra)],
                       timeout=420)
        state = ClusterState.load(folder)
        assert done.returncode == 0, done.stderr + done.stdout
        assert state is not None
        yield UpCluster(folder, state, done.stdout)
    finally:
        # Whatever `up` got to start (it records each part as it runs), even after a timeout.
        run_mmr(["cluster", "down", "--dir", str(folder)], timeout=120)
        if (folder / "config" / "00-cluster.yaml").exists():
            _drop_database(folder)


def _drop_database(folder: Path) -> None:
    config = yaml.safe_load((folder / "config" / "00-cluster.yaml").read_text())
    name = config["database"]["postgres"].rsplit("/", 1)[1]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _png(size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _media_id(content_uri: str) -> str:
    assert content_uri.startswith(f"mxc://{SERVER}/")
    return content_uri.rsplit("/", 1)[1]


def test_up_prints_the_url_the_admin_token_and_the_logs(cluster: UpCluster) -> None:
    lines = cluster.stdout.splitlines()
    assert f"url: {cluster.state.url}" in lines
    assert f"token: {cluster.state.token}" in lines
    assert f"logs: {cluster.state.logs}" in lines
    assert Path(cluster.state.logs, "mmr-admin-0.log").exists()


def test_eight_processes_each_with_its_own_machine_id_in_its_pools_range(
    cluster: UpCluster,
) -> None:
    members = cluster.state.members
    assert len(members) >= 8
    assert len({m.machine_id for m in members}) == len(members)
    assert [m.service for m in members if m.machine_id == 0] == ["admin"]
    for member in members:
        health = httpx.get(f"http://127.0.0.1:{member.port}/healthz", timeout=10).json()
        assert health == {"status": "ok", "service": member.service,
                          "machine_id": member.machine_id}
        assert member.machine_id in POOL_RANGES[member.service]


def test_upload_download_and_thumbnail_through_nginx(cluster: UpCluster) -> None:
    body = _png()
    with cluster.client() as client:
        uploaded = client.post("/_matrix/media/v3/upload?filename=red.png", content=body,
                               headers={"Content-Type": "image/png"})
        assert uploaded.status_code == 200, uploaded.text
        media_id = _media_id(uploaded.json()["content_uri"])
        downloaded = client.get(f"/_matrix/client/v1/media/download/{SERVER}/{media_id}")
        assert downloaded.status_code == 200 and downloaded.content == body
        thumb = client.get(f"/_matrix/client/v1/media/thumbnail/{SERVER}/{media_id}",
                           params={"width": 32, "height": 32, "method": "scale"})
        assert thumb.status_code == 200, thumb.text
        assert thumb.headers["content-type"].startswith("image/")
        assert Image.open(io.BytesIO(thumb.content)).size[0] <= 64


def test_async_upload_through_nginx(cluster: UpCluster) -> None:
    with cluster.client() as client:
        created = client.post("/_matrix/media/v1/create")
        assert created.status_code == 200, created.text
        media_id = _media_id(created.json()["content_uri"])
        put = client.put(f"/_matrix/media/v3/upload/{SERVER}/{media_id}", content=b"later bytes",
                         headers={"Content-Type": "text/plain"})
        assert put.status_code == 200, put.text
        got = client.get(f"/_matrix/client/v1/media/download/{SERVER}/{media_id}")
        assert got.status_code == 200 and got.content == b"later bytes"


def test_url_preview_through_nginx(cluster: UpCluster, web: FixtureWebServer) -> None:
    with cluster.client() as client:
        preview = client.get("/_matrix/client/v1/media/preview_url", params={"url": web.url("/page")})
    assert preview.status_code == 200, preview.text
    assert preview.json()["og:title"] == "Cluster page"


def test_admin_call_reaches_machine_zero(cluster: UpCluster) -> None:
    with cluster.client() as client:
        version = client.get("/_matrix/media/version", headers={"X-Request-Id": "up-admin-1"})
    assert version.status_code == 200 and "Version" in version.json()
    assert version.headers["x-request-id"] == "up-admin-1"
    admin_port = next(m.port for m in cluster.state.members if m.service == "admin")
    line = logged_line(Path(cluster.folder) / "nginx" / "access.log", '"request_id":"up-admin-1"')
    assert f'"upstream":"127.0.0.1:{admin_port}"' in line


def logged_line(log: Path, needle: str, timeout: float = 10.0) -> str:
    """The first line of `log` holding `needle`; nginx writes its access line after it has
    answered, so under load the line may land a moment after the client has its response."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in log.read_text().splitlines() if needle in line]
        if found or time.monotonic() > deadline:
            assert found, f"no line with {needle} in {log}"
            return found[0]
        time.sleep(0.1)


def test_access_lines_name_the_machine_the_request_and_the_homeserver(cluster: UpCluster) -> None:
    with cluster.client() as client:
        uploaded = client.post("/_matrix/media/v3/upload", content=b"logged",
                               headers={"Content-Type": "text/plain", "X-Request-Id": "up-log-1"})
    assert uploaded.status_code == 200, uploaded.text
    lines = [line for path in Path(cluster.state.logs).glob("mmr-upload-*.log")
             for line in path.read_text().splitlines() if "up-log-1" in line]
    access = [line for line in lines if "uvicorn.access" in line]
    assert len(access) == 1, lines
    assert re.search(r"\[upload/1[67] up-log-1 localhost\] uvicorn\.access: .*POST "
                     r"/_matrix/media/v3/upload HTTP/1\.1\" 200", access[0]), access[0]


def test_each_pools_metrics_show_the_traffic(cluster: UpCluster) -> None:
    assert cluster.metric("upload", "media_uploads_total") >= 2
    assert cluster.metric("download", "media_downloads_total") >= 2
    assert cluster.metric("thumbnail", "media_thumbnails_generated_total") >= 1
    assert cluster.metric("preview", "media_url_previews_total") >= 1
    assert cluster.metric("admin", "media_http_requests_total") >= 1


def _media_requests(member_metrics_port: int) -> float:
    """Requests this process answered on Matrix routes (probes and health checks left out)."""
    text = httpx.get(f"http://127.0.0.1:{member_metrics_port}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "media_http_requests_total"
               and sample.labels.get("route", "").startswith("/_matrix"))


def test_every_process_served_part_of_the_traffic(cluster: UpCluster, web: FixtureWebServer) -> None:
    """nginx spreads each pool's requests over all its processes (round-robin)."""
    with cluster.client() as client:
        uploaded = client.post("/_matrix/media/v3/upload", content=_png(48),
                               headers={"Content-Type": "image/png"})
        media_id = _media_id(uploaded.json()["content_uri"])
        for size in (20, 24, 28, 32):
            client.get("/_matrix/media/v3/config")
            client.get(f"/_matrix/client/v1/media/download/{SERVER}/{media_id}")
            client.get(f"/_matrix/client/v1/media/thumbnail/{SERVER}/{media_id}",
                       params={"width": size, "height": size})
            client.get("/_matrix/media/version")
    idle = [m.name for m in cluster.state.members if _media_requests(m.metrics_port) == 0]
    assert idle == [], "no Matrix traffic seen by " + ", ".join(idle)


def test_a_stopped_pool_is_a_matrix_502(cluster: UpCluster, web: FixtureWebServer) -> None:
    (preview,) = [s for s in cluster.state.started if s.name.startswith("preview-")]
    assert stop_pid(preview.pid, signal.SIGTERM)
    with cluster.client() as client:
        answer = client.get("/_matrix/client/v1/media/preview_url", params={"url": web.url("/page")})
    assert answer.status_code == 502
    assert answer.json()["errcode"] == "M_UNKNOWN"
    assert "preview" in answer.json()["error"]


def test_down_stops_everything_up_started_and_purge_deletes_its_data(cluster: UpCluster) -> None:
    pids = [s.pid for s in cluster.state.started if s.kind == "pid"]
    database = yaml.safe_load((cluster.folder / "config" / "00-cluster.yaml").read_text())[
        "database"]["postgres"].rsplit("/", 1)[1]
    done = run_mmr(["cluster", "down", "--dir", str(cluster.folder), "--purge"], timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nginx" in done.stdout and "seaweedfs" in done.stdout
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not cluster.folder.exists()
    with psycopg.connect(admin_url()) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (database,)).fetchone() is None
