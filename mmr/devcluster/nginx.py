"""nginx on loopback, run from a private folder: find (or install) the binary, wrap the repo's
template in a complete config, start it and wait for it to answer.

nginx runs in the foreground (`daemon off`) with its pid file, logs and temp directories in
`workdir`, so it never touches /etc/nginx or /var/log/nginx and several runs share a machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from mmr.devcluster.apt import apt_install
from mmr.devcluster.procs import free_port, stop_process

START_TIMEOUT_SECONDS = 15.0
START_ATTEMPTS = 3
STOP_TIMEOUT_SECONDS = 10.0
PORT_PLACEHOLDER = "${NGINX_PORT}"
ROUTING_LOG_FORMAT = "$request_method $request_uri $upstream_addr $status"


def ensure_nginx() -> Path:
    """The nginx binary; installed with apt-get when missing and we are root on Debian."""
    found = _locate_nginx()
    if found is None and apt_install("nginx-light", "nginx"):
        found = _locate_nginx()
    if found is not None:
        return found
    raise RuntimeError(
        "nginx is needed: it is not in /usr/sbin or on PATH and could not be installed "
        "(run as root on Debian, or `apt-get install nginx-light`)"
    )


def _locate_nginx() -> Path | None:
    for candidate in (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("nginx")
    return Path(on_path) if on_path else None


def full_config(http_conf: str, workdir: Path, access_log: Path | None = None,
                log_format: str = ROUTING_LOG_FORMAT) -> str:
    """A complete nginx.conf around `http_conf` with every writable path inside `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    temp = workdir / "temp"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (temp / sub).mkdir(parents=True, exist_ok=True)
    access = (
        f"log_format mmr '{log_format}';\n    access_log {access_log} mmr;"
        if access_log else "access_log off;"
    )
    # As root, nginx would switch its workers to `nobody`, who cannot reach a private dir.
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
        """The access log's lines, once written."""
        if not self.access_log.exists():
            return []
        return self.access_log.read_text().splitlines()

    def stop(self) -> None:
        """Graceful quit (SIGQUIT), then kill if nginx hangs."""
        stop_process(self.process, signal.SIGQUIT, STOP_TIMEOUT_SECONDS)


def start_nginx(conf_text: str, workdir: Path, detach: bool = False,
                log_format: str = ROUTING_LOG_FORMAT, port: int | None = None) -> NginxProcess:
    """Run nginx in the foreground with `conf_text` (http-level text) inside a full config.

    `conf_text` writes `${NGINX_PORT}` where its main listener's port goes: `port`, or a free one
    (another if that one was taken meanwhile). `detach` gives nginx its own session so it
    outlives this process. Returns once the listener answers HTTP.
    """
    last_error: Exception | None = None
    for _ in range(1 if port else START_ATTEMPTS):
        chosen = port or free_port()
        try:
            text = conf_text.replace(PORT_PLACEHOLDER, str(chosen))
            return _start_once(text, workdir, chosen, detach, log_format)
        except _PortTaken as exc:
            last_error = exc
    raise RuntimeError("nginx could not bind its port") from last_error


class _PortTaken(RuntimeError):
    """nginx exited because its port was taken between picking and binding it."""


def _start_once(conf_text: str, workdir: Path, port: int, detach: bool,
                log_format: str) -> NginxProcess:
    access_log = workdir / "access.log"
    # A previous attempt's "Address already in use" must not be read as this one's.
    (workdir / "error.log").unlink(missing_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(full_config(conf_text, workdir, access_log, log_format))
    process = subprocess.Popen(
        [str(ensure_nginx()), "-p", str(workdir), "-e", str(workdir / "error.log"),
         "-c", str(conf), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=detach,
    )
    nginx = NginxProcess(process, port, workdir, access_log)
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
