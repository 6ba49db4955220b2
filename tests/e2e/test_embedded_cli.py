"""The embedded default exactly as the README starts it: `mmr serve --data DIR --port PORT`.

One real process is started, used for a 50 MiB round trip and stopped with Ctrl-C (SIGINT);
then a second one on the same data folder must print the same token and still serve the media.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.bulk import UPLOAD_BYTES, Uploaded, download_digest, upload_streamed
from tests.infra.processes import MmrProcess, start_mmr


@dataclass
class Run:
    """What one start of `mmr serve` printed and did, up to its exit after SIGINT."""

    token: str
    exit_code: int
    stdout: str
    stderr: str
    downloaded: tuple[str, int]


def _token(process: MmrProcess) -> str:
    line = process.wait_for_stdout("token:")
    return line.split("token:", 1)[1].strip()


def _client(process: MmrProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=process.url, timeout=120,
                        headers={"Authorization": f"Bearer {token}"})


def _serve(name: str, workdir: Path) -> MmrProcess:
    process = start_mmr(name, ["serve", "--data", str(workdir / "mmr-data")], workdir / "logs",
                        cwd=workdir)
    process.wait_healthy()
    return process


def _stop_with_ctrl_c(process: MmrProcess) -> int:
    return process.stop(signal.SIGINT, timeout=20)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded-cli")


@pytest.fixture(scope="module")
def first_run(workdir: Path) -> tuple[Run, Uploaded]:
    process = _serve("first", workdir)
    try:
        token = _token(process)
        with _client(process, token) as client:
            uploaded = upload_streamed(client)
            downloaded = download_digest(client, uploaded)
    finally:
        exit_code = _stop_with_ctrl_c(process)
    return Run(token, exit_code, process.stdout(), process.stderr(), downloaded), uploaded


@pytest.fixture(scope="module")
def second_run(workdir: Path, first_run: tuple[Run, Uploaded]) -> Run:
    _, uploaded = first_run
    process = _serve("second", workdir)
    try:
        token = _token(process)
        with _client(process, token) as client:
            downloaded = download_digest(client, uploaded)
    finally:
        exit_code = _stop_with_ctrl_c(process)
    return Run(token, exit_code, process.stdout(), process.stderr(), downloaded)


def test_start_prints_the_url_and_an_admin_token(first_run: tuple[Run, Uploaded]) -> None:
    run, _ = first_run
    assert "listening on http://127.0.0.1:" in run.stdout
    assert "/_matrix/media/unstable/admin/console/" in run.stdout  # the console's URL
    assert len(run.token) >= 32


def test_50_mib_upload_downloads_byte_identical(first_run: tuple[Run, Uploaded]) -> None:
    run, uploaded = first_run
    assert uploaded.mxc.startswith("mxc://localhost/")
    assert run.downloaded == (uploaded.sha256, UPLOAD_BYTES)


def test_ctrl_c_stops_it_cleanly(first_run: tuple[Run, Uploaded], second_run: Run) -> None:
    for run in (first_run[0], second_run):
        assert run.exit_code == 0, run.stderr
        assert "Traceback" not in run.stderr
        assert "Application shutdown complete" in run.stderr


def test_restart_prints_the_same_token_kept_in_the_data_folder(
    workdir: Path, first_run: tuple[Run, Uploaded], second_run: Run
) -> None:
    assert second_run.token == first_run[0].token
    assert second_run.token in (workdir / "mmr-data" / "shared-secret-token").read_text()


def test_media_survives_the_restart(first_run: tuple[Run, Uploaded], second_run: Run) -> None:
    _, uploaded = first_run
    assert second_run.downloaded == (uploaded.sha256, UPLOAD_BYTES)


def test_data_stays_in_the_data_folder(workdir: Path, second_run: Run) -> None:
    assert sorted(p.name for p in workdir.iterdir()) == ["logs", "mmr-data"]
