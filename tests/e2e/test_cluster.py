"""The foundation's "done when": five real `mmr serve` processes behind nginx, on PostgreSQL,
Redis and SeaweedFS S3, with MACHINE_IDs 0..4, serving a 50 MiB upload and download.

Then the start-up guards: bad MACHINE_IDs and bad config keys stop `mmr serve` with a message
naming the problem, and `mmr config check` tells good from bad files.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shared.ids.snowflake import decompose
from tests.conftest import SERVER_NAME, TEST_SECRET, cluster_raw_config, new_bucket
from tests.e2e.bulk import UPLOAD_BYTES, Uploaded, download_digest, upload_streamed
from tests.infra.nginx import NginxProcess, render_mmr_conf, start_nginx
from tests.infra.postgres import temporary_database
from tests.infra.processes import MmrProcess, start_mmr
from tests.infra.seaweedfs import S3Server

MACHINE_IDS = {"admin": 0, "upload": 1, "download": 2, "thumbnail": 3, "preview": 4}
LOG_WAIT_SECONDS = 5.0


@dataclass
class Cluster:
    processes: dict[str, MmrProcess]
    nginx: NginxProcess
    s3: S3Server
    bucket: str

    def client(self) -> httpx.Client:
        """A client of the ingress, asking for the homeserver by name as a real client would."""
        return httpx.Client(
            base_url=self.nginx.url, timeout=120,
            headers={"Host": SERVER_NAME, "Authorization": f"Bearer {TEST_SECRET}"},
        )

    def upstream_of(self, method: str, path_start: str) -> str:
        """The upstream address nginx sent the request `method path_start...` to.

        nginx writes the log line just after the last byte went out, so wait for it briefly.
        """
        deadline = time.monotonic() + LOG_WAIT_SECONDS
        while True:
            for line in self.nginx.access_lines():
                # `$upstream_addr` lists every upstream tried ("a, b"): keep it whole.
                logged_method, uri, *upstreams, _status = line.split(" ")
                if logged_method == method and uri.startswith(path_start):
                    return " ".join(upstreams)
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx logged no {method} {path_start}: "
                                     f"{self.nginx.access_lines()}")
            time.sleep(0.05)


def _secrets_to_env(raw: dict[str, Any]) -> dict[str, str]:
    """Move the secrets out of the config into environment variables, as deploy/k8s does."""
    env = {
        "MMR_DATABASE_POSTGRES": raw["database"].pop("postgres"),
        "MMR_SHARED_SECRET": raw["sharedSecretAuth"].pop("token"),
    }
    for store in raw["datastores"]:
        env[f"MMR_DATASTORE_{store['id'].upper()}_ACCESSKEYID"] = store["opts"].pop("accessKeyId")
        env[f"MMR_DATASTORE_{store['id'].upper()}_ACCESSSECRET"] = store["opts"].pop("accessSecret")
    return env


@pytest.fixture(scope="module")
def cluster_database() -> Iterator[str]:
    """A database of its own, so the non-admin processes really wait for admin's migrations."""
    with temporary_database("mmr_e2e_cluster") as url:
        yield url


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, cluster_database: str, redis_url: str,
    s3_server: S3Server,
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    bucket = new_bucket(s3_server)
    raw = cluster_raw_config(workdir, cluster_database, redis_url, s3_server, bucket)
    secrets = _secrets_to_env(raw)
    config = workdir / "media-repo.yaml"
    config.write_text(yaml.safe_dump(raw))
    # All five at once: admin migrates while the others wait for the schema.
    processes = {
        service: start_mmr(
            service, ["serve", service, "--config", str(config)], workdir / "logs",
            env={"MACHINE_ID": str(machine_id), **secrets},
        )
        for service, machine_id in MACHINE_IDS.items()
    }
    try:
        for process in processes.values():
            process.wait_healthy()
        upstreams = {service: f"127.0.0.1:{p.port}" for service, p in processes.items()}
        nginx = start_nginx(render_mmr_conf(upstreams), workdir / "nginx")
        try:
            yield Cluster(processes, nginx, s3_server, bucket)
        finally:
            nginx.stop()
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture(scope="module")
def big_upload(cluster: Cluster) -> Uploaded:
    with cluster.client() as client:
        return upload_streamed(client, filename="cluster-e2e.bin")


@pytest.mark.parametrize("service", list(MACHINE_IDS))
def test_each_service_is_ready_on_its_own_port(cluster: Cluster, service: str) -> None:
    process = cluster.processes[service]
    ready = httpx.get(process.url + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    health = httpx.get(process.url + "/healthz", timeout=10).json()
    assert health == {"status": "ok", "service": service, "machine_id": MACHINE_IDS[service]}


def test_50_mib_upload_and_download_through_nginx_are_byte_identical(
    cluster: Cluster, big_upload: Uploaded
) -> None:
    assert big_upload.server_name == SERVER_NAME
    with cluster.client() as client:
        sha256, size = download_digest(client, big_upload)
    assert (sha256, size) == (big_upload.sha256, UPLOAD_BYTES)


def test_nginx_sent_the_upload_to_the_upload_process_and_the_download_to_download(
    cluster: Cluster, big_upload: Uploaded
) -> None:
    with cluster.client() as client:
        download_digest(client, big_upload)
    upload_port, download_port = cluster.processes["upload"].port, cluster.processes["download"].port
    assert cluster.upstream_of("POST", "/_matrix/media/v3/upload?filename=cluster-e2e.bin") == (
        f"127.0.0.1:{upload_port}")
    download_path = f"/_matrix/client/v1/media/download/{SERVER_NAME}/{big_upload.media_id}"
    assert cluster.upstream_of("GET", download_path) == f"127.0.0.1:{download_port}"


def test_media_id_carries_the_upload_machines_id(big_upload: Uploaded) -> None:
    # The first 11 characters are the base64url snowflake minted by the process that stored it.
    snowflake = int.from_bytes(base64.urlsafe_b64decode(big_upload.media_id[:11] + "="), "big")
    _, machine_id, _ = decompose(snowflake)
    assert machine_id == MACHINE_IDS["upload"]


def test_the_bytes_are_stored_once_in_s3(cluster: Cluster, big_upload: Uploaded) -> None:
    listing = cluster.s3.client().list_objects_v2(Bucket=cluster.bucket)
    sizes = [obj["Size"] for obj in listing.get("Contents", [])]
    assert sizes.count(UPLOAD_BYTES) == 1


def test_a_request_id_passes_through_nginx_to_the_service(cluster: Cluster) -> None:
    with cluster.client() as client:
        response = client.get("/_matrix/media/v3/config", headers={"X-Request-Id": "e2e-req-1"})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "e2e-req-1"
    assert "m.upload.size" in response.json()


# --- start-up guards ------------------------------------------------------------------------------

BAD_KEY = "maxBytez"


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def _config_files(workdir: Path) -> tuple[Path, Path]:
    """A valid config that fails nothing before MACHINE_ID is checked, and one with a typo."""
    good = {"database": {"sqlite": str(workdir / "never-used.db")},
            "repo": {"tempPath": str(workdir / "tmp")}}
    good_path, bad_path = workdir / "good.yaml", workdir / "bad.yaml"
    good_path.write_text(yaml.safe_dump(good))
    bad_path.write_text(yaml.safe_dump({**good, "uploads": {BAD_KEY: 5}}))
    return good_path, bad_path


UNSET = None
BAD_MACHINE_IDS = ["abc", "-1", "1024", "", UNSET, "0"]


def _startup_cases(good: Path, bad: Path) -> dict[str, tuple[list[str], dict[str, str | None], bool]]:
    """name -> (mmr arguments, environment, listens)."""
    cases: dict[str, tuple[list[str], dict[str, str | None], bool]] = {
        f"upload MACHINE_ID={value!r}": (
            ["serve", "upload", "--config", str(good)], {"MACHINE_ID": value}, True)
        for value in BAD_MACHINE_IDS
    }
    cases["admin MACHINE_ID=3"] = (["serve", "admin", "--config", str(good)], {"MACHINE_ID": "3"},
                                   True)
    cases["serve with unknown key"] = (["serve", "upload", "--config", str(bad)],
                                       {"MACHINE_ID": "1"}, True)
    cases["check good"] = (["config", "check", str(good)], {}, False)
    cases["check bad"] = (["config", "check", str(bad)], {}, False)
    return cases


@pytest.fixture(scope="module")
def startup_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case run at once (each is a separate interpreter start), then collected."""
    workdir = tmp_path_factory.mktemp("startup-guards")
    good, bad = _config_files(workdir)
    started = {
        name: start_mmr(re.sub(r"\W+", "_", name), args, workdir / "logs", env=env,
                        cwd=workdir, listen=listen)
        for name, (args, env, listen) in _startup_cases(good, bad).items()
    }
    outcomes = {}
    for name, process in started.items():
        # Ten interpreters start at once: on a loaded machine the last can take minutes.
        exit_code = process.wait_exit(timeout=240)
        outcomes[name] = Outcome(exit_code, process.stdout(), process.stderr())
    return outcomes


@pytest.mark.parametrize("value", BAD_MACHINE_IDS)
def test_upload_refuses_a_bad_or_missing_machine_id(
    startup_outcomes: dict[str, Outcome], value: str | None
) -> None:
    outcome = startup_outcomes[f"upload MACHINE_ID={value!r}"]
    assert outcome.exit_code != 0
    assert "MACHINE_ID" in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_admin_refuses_any_machine_id_but_zero(startup_outcomes: dict[str, Outcome]) -> None:
    outcome = startup_outcomes["admin MACHINE_ID=3"]
    assert outcome.exit_code != 0
    assert "MACHINE_ID" in outcome.stderr and "0" in outcome.stderr


def test_serve_refuses_a_config_with_an_unknown_key(startup_outcomes: dict[str, Outcome]) -> None:
    outcome = startup_outcomes["serve with unknown key"]
    assert outcome.exit_code != 0
    assert f"uploads.{BAD_KEY}" in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_config_check_says_ok_for_a_good_file(startup_outcomes: dict[str, Outcome]) -> None:
    outcome = startup_outcomes["check good"]
    assert outcome.exit_code == 0
    assert outcome.stdout.strip().endswith("OK")


def test_config_check_names_the_bad_key(startup_outcomes: dict[str, Outcome]) -> None:
    outcome = startup_outcomes["check bad"]
    assert outcome.exit_code == 1
    assert f"uploads.{BAD_KEY}: unknown key" in outcome.stderr
