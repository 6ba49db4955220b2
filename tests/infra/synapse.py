"""Real Synapse homeservers for tests: `start_synapse(base_dir)` returns a running `SynapseServer`.

Synapse (PyPI `matrix-synapse`) runs from its own venv under `<repo>/.test-infra/` so its pins
never fight the project's, with SQLite, every listener on 127.0.0.1 and generous rate limits.
It plays the homeserver whose tokens mmr checks (users, guests, appservices) and, with
`federation_tls=True`, a federation peer: an IP-literal server name `127.0.0.1:<port>` served over
TLS needs no .well-known or SRV, so peers on loopback find each other.

Nothing here skips: a Synapse that cannot be installed or started raises with the log tail.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import fcntl
import functools
import hashlib
import hmac
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.infra.http_server import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_DIR = REPO_ROOT / ".test-infra" / "synapse-venv"
SYNAPSE_REQUIREMENT = "matrix-synapse~=1.163"
"""The config keys written below are checked against 1.163; stay within that major line."""

START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
START_ATTEMPTS = 3
"""A port picked free can be taken before Synapse binds it; such a start is retried."""
HTTP_TIMEOUT_SECONDS = 30.0
LOOPBACK = "127.0.0.1"

_GENEROUS = {"per_second": 10000, "burst_count": 100000}


# --- the venv ------------------------------------------------------------------------------------


@functools.cache
def synapse_python() -> Path:
    """The python of a venv with `matrix-synapse` installed, created once and then reused.

    A file lock keeps two pytest processes from installing at the same time. Raises with the
    tail of pip's output when the install fails.
    """
    VENV_DIR.parent.mkdir(parents=True, exist_ok=True)
    python = VENV_DIR / "bin" / "python"
    with _file_lock(VENV_DIR.parent / "synapse-venv.lock"):
        if _imports_synapse(python):
            return python
        _create_venv()
        _pip_install(python)
        if not _imports_synapse(python):
            raise RuntimeError(
                f"`pip install {SYNAPSE_REQUIREMENT}` succeeded but `import synapse` fails "
                f"in {VENV_DIR}"
            )
    return python


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _imports_synapse(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import synapse.app.homeserver"], capture_output=True, check=False
    )
    return probe.returncode == 0


def _create_venv() -> None:
    # --clear: a venv left broken (e.g. its base interpreter moved) is rebuilt, not patched.
    _run_or_raise([sys.executable, "-m", "venv", "--clear", str(VENV_DIR)], "creating the venv")


def _pip_install(python: Path) -> None:
    _run_or_raise(
        [str(python), "-m", "pip", "install", "--quiet", SYNAPSE_REQUIREMENT],
        f"pip install {SYNAPSE_REQUIREMENT}",
    )


def _run_or_raise(command: list[str], what: str) -> None:
    done = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False, text=True
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-40:])
        raise RuntimeError(
            f"Synapse test venv at {VENV_DIR}: {what} failed ({done.returncode}):\n{tail}"
        )


# --- what a test registers and gets back --------------------------------------------------------


@dataclass
class RegisteredUser:
    user_id: str
    access_token: str
    device_id: str


@dataclass
class AppserviceRegistration:
    """An application service registered with Synapse through a registration YAML file.

    `url` None means Synapse pushes nothing to it: tests only use its token.
    """

    id: str
    as_token: str
    hs_token: str
    sender_localpart: str
    user_regex: str
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            "rate_limited": False,
            "namespaces": {
                "users": [{"exclusive": True, "regex": self.user_regex}],
                "aliases": [],
                "rooms": [],
            },
        }

    def write_yaml(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump(self.as_dict(), sort_keys=False))
        return path


# --- a running server ----------------------------------------------------------------------------


@dataclass
class SynapseServer:
    """A Synapse process on loopback and what tests need to talk to it or act as it."""

    server_name: str
    client_url: str
    federation_url: str | None
    signing_key_path: Path
    tls_cert_path: Path | None
    registration_shared_secret: str
    data_dir: Path
    log_path: Path
    access_log_path: Path
    stdout_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.client_url, headers=headers,
                            timeout=HTTP_TIMEOUT_SECONDS)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this server's self-signed certificate."""
        if self.tls_cert_path is None:
            raise RuntimeError(f"{self.server_name} was started without federation_tls")
        return ssl.create_default_context(cafile=str(self.tls_cert_path))

    def register_user(
        self, localpart: str, password: str = "pw", admin: bool = False
    ) -> RegisteredUser:
        """Register through the shared-secret admin API (HMAC-SHA1 as Synapse documents it).

        A localpart taken already (test folders share one homeserver) logs in with `password`
        instead, which gives a fresh token and device for the same user.
        """
        with self.client() as http:
            nonce = _json(http.get("/_synapse/admin/v1/register"))["nonce"]
            mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                     b"admin" if admin else b"notadmin"]))
            body = {"nonce": nonce, "username": localpart, "password": password,
                    "admin": admin, "mac": mac.hexdigest()}
            response = http.post("/_synapse/admin/v1/register", json=body)
            if _errcode(response) == "M_USER_IN_USE":
                response = http.post("/_matrix/client/v3/login", json={
                    "type": "m.login.password", "password": password,
                    "identifier": {"type": "m.id.user", "user": localpart},
                })
            return _registered(_json(response))

    def register_guest(self) -> RegisteredUser:
        with self.client() as http:
            return _registered(_json(
                http.post("/_matrix/client/v3/register", params={"kind": "guest"}, json={})
            ))

    def register_appservice_user(self, appservice: AppserviceRegistration, localpart: str) -> str:
        """Create a user in the appservice's namespace (Synapse lets an appservice act only as
        users that exist); returns its user ID, also when it already existed."""
        body = {"type": "m.login.application_service", "username": localpart,
                "inhibit_login": True}
        with self.client(appservice.as_token) as http:
            response = http.post("/_matrix/client/v3/register", json=body)
        if _errcode(response) == "M_USER_IN_USE":
            return f"@{localpart}:{self.server_name}"
        return str(_json(response)["user_id"])

    def upload(
        self, token: str, data: bytes, content_type: str, filename: str | None = None
    ) -> str:
        """Store media in this server's own media repository; returns its `mxc://` URI."""
        params = {"filename": filename} if filename else {}
        with self.client(token) as http:
            response = http.post("/_matrix/media/v3/upload", params=params, content=data,
                                 headers={"Content-Type": content_type})
        return str(_json(response)["content_uri"])

    def count_requests(self, path_substring: str) -> int:
        """How many requests whose request line contains `path_substring` this server finished.

        Synapse writes one `synapse.access` line per request when it has finished processing it,
        just before the last bytes leave; `wait_for_requests` covers that short window.
        """
        if not self.access_log_path.exists():
            return 0
        with open(self.access_log_path, errors="replace") as log:
            return sum(1 for line in log if path_substring in _request_line(line))

    def wait_for_requests(self, path_substring: str, at_least: int, timeout: float = 5.0) -> int:
        """`count_requests`, polled until it reaches `at_least` or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while (count := self.count_requests(path_substring)) < at_least:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return count

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stdout_path, self.log_path):
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"--- {path.name} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL if it has not exited in time. Idempotent."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(
            f"Synapse {response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def _errcode(response: httpx.Response) -> str | None:
    if response.status_code != 400:
        return None
    with contextlib.suppress(ValueError):
        return str(response.json().get("errcode"))
    return None


def _registered(body: dict[str, Any]) -> RegisteredUser:
    return RegisteredUser(body["user_id"], body["access_token"], body["device_id"])


def _request_line(access_log_line: str) -> str:
    # `... 200 "GET /path?query HTTP/1.1" "user agent" [0 dbevts]`: match the quoted request
    # only, so a user agent or the logger's own text never counts.
    _, quote, rest = access_log_line.partition('"')
    return rest.partition('"')[0] if quote else ""


# --- starting one --------------------------------------------------------------------------------


class _PortTaken(RuntimeError):
    """A listener port was taken between picking and binding it: worth another attempt."""


def start_synapse(
    base_dir: Path,
    *,
    server_name: str | None = None,
    federation_tls: bool = False,
    appservices: Sequence[AppserviceRegistration] = (),
    extra_config: dict[str, Any] | None = None,
) -> SynapseServer:
    """Configure and start a Synapse with all its files in `base_dir`; return once it answers.

    `server_name` defaults to `127.0.0.1:<federation port>` with `federation_tls`, else
    `localhost`. `extra_config` keys are set on top of the generated homeserver.yaml.
    """
    python = synapse_python()
    last_error: Exception | None = None
    for _ in range(START_ATTEMPTS):
        if base_dir.exists():
            shutil.rmtree(base_dir)
        base_dir.mkdir(parents=True)
        try:
            return _start_once(python, base_dir, server_name, federation_tls, appservices,
                               extra_config or {})
        except _PortTaken as exc:
            last_error = exc
    raise RuntimeError(f"Synapse did not start after {START_ATTEMPTS} attempts") from last_error


def _start_once(
    python: Path,
    base_dir: Path,
    server_name: str | None,
    federation_tls: bool,
    appservices: Sequence[AppserviceRegistration],
    extra_config: dict[str, Any],
) -> SynapseServer:
    client_port, federation_port = free_ports(2)
    name = server_name or (f"{LOOPBACK}:{federation_port}" if federation_tls else "localhost")
    config_path = base_dir / "homeserver.yaml"
    data_dir = base_dir / "data"
    _generate_config(python, name, config_path, data_dir)
    config = yaml.safe_load(config_path.read_text())
    server = SynapseServer(
        server_name=name,
        client_url=f"http://{LOOPBACK}:{client_port}",
        federation_url=f"https://{LOOPBACK}:{federation_port}" if federation_tls else None,
        signing_key_path=Path(config["signing_key_path"]),
        tls_cert_path=None,
        registration_shared_secret=str(config["registration_shared_secret"]),
        data_dir=data_dir,
        log_path=base_dir / "homeserver.log",
        access_log_path=base_dir / "access.log",
        stdout_path=base_dir / "stdout.log",
    )
    config["listeners"] = [_listener(client_port, tls=False,
                                     names=["client", "federation", "keys", "media"])]
    if federation_tls:
        cert_path, key_path = write_self_signed_cert(base_dir)
        server.tls_cert_path = cert_path
        config["listeners"].append(
            _listener(federation_port, tls=True, names=["federation", "keys", "media"])
        )
        config["tls_certificate_path"] = str(cert_path)
        config["tls_private_key_path"] = str(key_path)
    config.update(_test_settings(base_dir, appservices))
    _write_log_config(server, Path(config["log_config"]))
    config.update(extra_config)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    _launch(python, config_path, server)
    return server


def _generate_config(python: Path, server_name: str, config_path: Path, data_dir: Path) -> None:
    """Synapse's own generator makes the secrets and the signing key; we edit the rest."""
    command = [str(python), "-m", "synapse.app.homeserver", "--generate-config",
               "--server-name", server_name, "--config-path", str(config_path),
               "--data-directory", str(data_dir), "--report-stats=no"]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False, text=True, cwd=config_path.parent)
    if done.returncode != 0:
        raise RuntimeError(f"synapse --generate-config failed ({done.returncode}):\n"
                           + "\n".join(done.stdout.splitlines()[-40:]))


def _listener(port: int, *, tls: bool, names: list[str]) -> dict[str, Any]:
    return {"port": port, "bind_addresses": [LOOPBACK], "type": "http", "tls": tls,
            "x_forwarded": False, "resources": [{"names": names, "compress": False}]}


def _test_settings(
    base_dir: Path, appservices: Sequence[AppserviceRegistration]
) -> dict[str, Any]:
    """What makes a throwaway Synapse fit for tests on loopback (keys as Synapse 1.163 names
    them: `ip_range_blacklist` and friends are still the spelling it reads)."""
    appservice_files = [str(appservice.write_yaml(base_dir / f"appservice-{appservice.id}.yaml"))
                        for appservice in appservices]
    return {
        "report_stats": False,
        "enable_registration": False,
        "allow_guest_access": True,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_verify_certificates": False,
        "ip_range_blacklist": [],
        "federation_ip_range_blacklist": [],
        "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
        "app_service_config_files": appservice_files,
        "max_upload_size": "200M",
        "url_preview_enabled": False,
        "rc_message": _GENEROUS,
        "rc_registration": _GENEROUS,
        "rc_login": {"address": _GENEROUS, "account": _GENEROUS, "failed_attempts": _GENEROUS},
        "rc_media_create": _GENEROUS,
        "rc_joins": {"local": _GENEROUS, "remote": _GENEROUS},
        "rc_admin_redaction": _GENEROUS,
        # Federation tests fire requests in bursts; the defaults (3 concurrent, 10 per second
        # before slowing down) would make them measure the limiter instead of the code.
        "rc_federation": {"window_size": 1000, "sleep_limit": 100000, "sleep_delay": 1,
                          "reject_limit": 100000, "concurrent": 1000},
        "remote_media_download_per_second": "1G",
        "remote_media_download_burst_count": "10G",
    }


def _write_log_config(server: SynapseServer, path: Path) -> None:
    """Replace the generated logging: access lines (INFO) to their own unbuffered file for
    `count_requests`; WARNING and up from the rest to the homeserver log."""
    plain = {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}
    log_config = {
        "version": 1,
        "formatters": {"plain": plain},
        "handlers": {
            "main": {"class": "logging.FileHandler", "formatter": "plain",
                     "filename": str(server.log_path), "encoding": "utf8"},
            "access": {"class": "logging.FileHandler", "formatter": "plain",
                       "filename": str(server.access_log_path), "encoding": "utf8"},
        },
        "loggers": {
            "synapse.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
        "root": {"level": "WARNING", "handlers": ["main"]},
        "disable_existing_loggers": False,
    }
    path.write_text(yaml.safe_dump(log_config, sort_keys=False))


def write_self_signed_cert(base_dir: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 and DNS localhost, its own issuer, so a client can trust
    exactly it (`verify=tls_cert_path`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = base_dir / "tls.crt", base_dir / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ))
    return cert_path, key_path


def _launch(python: Path, config_path: Path, server: SynapseServer) -> None:
    with open(server.stdout_path, "wb") as stdout:
        # Its own process group, so stop() also reaches anything Synapse itself spawns.
        server.process = subprocess.Popen(
            [str(python), "-m", "synapse.app.homeserver", "-c", str(config_path)],
            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=config_path.parent, start_new_session=True,
        )
    try:
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    # Backstop for a run that ends without fixture teardown; stop() is idempotent.
    atexit.register(server.stop)


def _wait_until_ready(server: SynapseServer) -> None:
    assert server.process is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(timeout=2) as http:
        while True:
            if server.process.poll() is not None:
                _raise_exited(server)
            with contextlib.suppress(httpx.TransportError):
                if http.get(f"{server.client_url}/_matrix/client/versions").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Synapse did not answer /_matrix/client/versions within "
                    f"{START_TIMEOUT_SECONDS:.0f}s\n{server.log_tail()}"
                )
            time.sleep(0.1)


def _raise_exited(server: SynapseServer) -> None:
    assert server.process is not None
    tail = server.log_tail()
    message = f"Synapse exited with code {server.process.returncode} while starting\n{tail}"
    if "Address already in use" in tail:
        raise _PortTaken(message)
    raise RuntimeError(message)
