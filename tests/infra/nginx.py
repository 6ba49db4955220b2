"""A real nginx for tests: find (or install) the binary, render the repo's template, run it.

nginx runs in the foreground as a child of the test process, with its pid file, logs and temp
directories in a test folder, so it never touches /etc/nginx or /var/log/nginx and several runs
can share a machine. Missing nginx is an error, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.infra.http_server import free_port
from tests.infra.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "deploy" / "nginx" / "mmr.conf.template"
TEMPLATE_PLACEHOLDERS = (
    "MMR_LISTEN", "UPLOAD_UPSTREAM", "DOWNLOAD_UPSTREAM", "THUMBNAIL_UPSTREAM",
    "PREVIEW_UPSTREAM", "ADMIN_UPSTREAM",
)
START_TIMEOUT_SECONDS = 15.0
START_ATTEMPTS = 3
PORT_PLACEHOLDER = "${NGINX_PORT}"
STOP_TIMEOUT_SECONDS = 10.0
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ROUTING_LOG_FORMAT = "$request_method $request_uri $upstream_addr $status"


def ensure_nginx() -> Path:
    """The nginx binary; installed with apt-get when missing and we are root on Debian."""
    found = _locate_nginx()
    if found is not None:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install_nginx()
        found = _locate_nginx()
        if found is not None:
            return found
    raise RuntimeError(
        "the end-to-end tests need nginx: it is not in /usr/sbin or on PATH and could not be "
        "installed (run as root on Debian, or `apt-get install nginx-light`)"
    )


def _locate_nginx() -> Path | None:
    for candidate in (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("nginx")
    return Path(on_path) if on_path else None


def _apt_install_nginx() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for package in ("nginx-light", "nginx"):
        for refresh in (False, True):
            if refresh:
                subprocess.run(["apt-get", "update", "-q"], env=env, check=False,
                               capture_output=True)
            done = subprocess.run(["apt-get", "install", "-y", "-q", package], env=env,
                                  check=False, capture_output=True)
            if done.returncode == 0:
                return


def render_template(values: Mapping[str, str], template: Path = TEMPLATE_PATH) -> str:
    """The template with its `${NAME}` placeholders filled, as `envsubst 'NAMES'` would."""
    missing = [name for name in TEMPLATE_PLACEHOLDERS if name not in values]
    if missing:
        raise ValueError(f"no value for template placeholders: {', '.join(missing)}")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"unknown placeholder ${{{name}}} in {template}")
        return values[name]

    return _PLACEHOLDER_RE.sub(fill, template.read_text())


def render_mmr_conf(upstreams: Mapping[str, str], listen: str = f"127.0.0.1:{PORT_PLACEHOLDER}") -> str:
    """The template rendered for `listen` and {service name: host:port} upstreams."""
    values = {f"{service.upper()}_UPSTREAM": address for service, address in upstreams.items()}
    return render_template({"MMR_LISTEN": listen, **values})


def full_config(http_conf: str, workdir: Path, access_log: Path | None = None) -> str:
    """A complete nginx.conf around `http_conf` with every writable path inside `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    temp = workdir / "temp"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
    access = (
        f"log_format routing '{ROUTING_LOG_FORMAT}';\n    access_log {access_log} routing;"
        if access_log else "access_log off;"
    )
    # As root, nginx would switch its workers to `nobody`, who cannot reach a private test dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
    {access}
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
{http_conf}
}}
"""


def check_config(conf_text: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a complete config; the result carries nginx's verdict on stderr."""
    conf = workdir / "nginx.conf"
    conf.write_text(conf_text)
    return subprocess.run(
        [str(ensure_nginx()), "-t", "-p", str(workdir), "-e", str(workdir / "error.log"),
         "-c", str(conf)],
        capture_output=True, text=True, timeout=30, check=False,
    )


@dataclass
class NginxProcess:
    """A running nginx; `url` is its listener named by `port`."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    access_log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_lines(self) -> list[str]:
        """The routing log: `METHOD URI UPSTREAM_ADDR STATUS` per request, once written."""
        if not self.access_log.exists():
            return []
        return self.access_log.read_text().splitlines()

    def stop(self) -> None:
        """Graceful quit (SIGQUIT), then kill if nginx hangs."""
        stop_process(self.process, signal.SIGQUIT, STOP_TIMEOUT_SECONDS)


def start_nginx(conf_text: str, tmpdir: Path) -> NginxProcess:
    """Run nginx in the foreground with `conf_text` (http-level text) inside a full config.

    `conf_text` writes `${NGINX_PORT}` where its main listener's port goes; a free port is filled
    in (another one if that port was taken meanwhile). Returns once the listener answers HTTP.
    """
    last_error: Exception | None = None
    for _ in range(START_ATTEMPTS):
        port = free_port()
        try:
            return _start_once(conf_text.replace(PORT_PLACEHOLDER, str(port)), tmpdir, port)
        except _PortTaken as exc:
            last_error = exc
    raise RuntimeError(f"nginx could not bind a free port in {START_ATTEMPTS} attempts") from (
        last_error
    )


class _PortTaken(RuntimeError):
    """nginx exited because its port was taken between picking and binding it."""


def _start_once(conf_text: str, tmpdir: Path, port: int) -> NginxProcess:
    access_log = tmpdir / "access.log"
    # A previous attempt's "Address already in use" must not be read as this one's.
    (tmpdir / "error.log").unlink(missing_ok=True)
    conf = tmpdir / "nginx.conf"
    conf.write_text(full_config(conf_text, tmpdir, access_log))
    process = subprocess.Popen(
        [str(ensure_nginx()), "-p", str(tmpdir), "-e", str(tmpdir / "error.log"),
         "-c", str(conf), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    nginx = NginxProcess(process, port, tmpdir, access_log)
    try:
        _wait_until_answering(nginx)
    except BaseException:
        nginx.stop()
        raise
    return nginx


def _wait_until_answering(nginx: NginxProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if nginx.process.poll() is not None:
            if "Address already in use" in nginx.error_log():
                raise _PortTaken(nginx.error_log())
            raise RuntimeError(
                f"nginx exited with {nginx.process.returncode}:\n{nginx.error_log()}"
            )
        try:
            httpx.get(nginx.url + "/", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer in time:\n{nginx.error_log()}") from None
            time.sleep(0.05)
