"""The servers one benchmark run starts on this machine, each as a `Target` the rows load alike.

* `mmr-embedded`: `mmr serve --config` (every service in one process, SQLite, a file datastore);
* `mmr-cluster`: `mmr cluster up`'s code (mmr/devcluster): PostgreSQL, Redis, SeaweedFS S3, one
  process per pool (two for download) and nginx from deploy/nginx in front;
* `synapse`: PyPI matrix-synapse on SQLite with its default thumbnail sizes (made at upload), rate
  limits raised, logging at WARNING. It is also the homeserver whose tokens mmr checks and whose
  signing key mmr federates with (`127.0.0.1:<port>` over TLS);
* `synapse-dynamic`: the same with `dynamic_thumbnails: true` and no pre-made sizes, so every
  thumbnail size is made on its first request, as mmr does;
* `synapse-remote`: the remote homeserver holding the media of the remote-media rows;
* `nginx`: nginx serving the same files statically (sendfile), the limit for byte rows.

Synapse lives in its own venv under .test-infra/ (installed on first use by tests.infra.synapse).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.measure import ProcessTree
from bench.rig import SECRET, write_config

LOOPBACK_ALLOWED_DENY_LIST = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
MAX_UPLOAD_BYTES = 1100 * 1024 * 1024  # a 1 GiB upload fits, in every target


@dataclass
class Target:
    """A server under load: where to send requests and which processes' CPU they cost."""

    name: str
    kind: str  # "mmr", "synapse" or "nginx"
    url: str
    token: str
    server_name: str  # the homeserver name of media uploaded here
    host: str | None = None  # the Host header mmr picks the homeserver by
    pools: dict[str, list[ProcessTree]] = field(default_factory=dict)  # pool or "*" -> trees
    extra: list[ProcessTree] = field(default_factory=list)  # ingress, object store
    static_dir: Path | None = None  # nginx: where the files it serves go
    state: dict[str, Any] = field(default_factory=dict)  # what rows prepared here, shared
    # Stop and start the process serving a pool, returning once it is ready (None: not offered).
    restart: Callable[[Target, str], None] | None = None

    def service(self, pool: str) -> list[ProcessTree]:
        return self.pools.get(pool) or self.pools["*"]

    def everything(self) -> list[ProcessTree]:
        trees = [tree for trees in self.pools.values() for tree in trees]
        return list(dict.fromkeys(trees)) + self.extra

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if self.host:
            headers["Host"] = self.host
        return headers


# --- Synapse ------------------------------------------------------------------------------------


@dataclass
class Homeserver:
    """What mmr needs to front a homeserver (checks its tokens, signs federation as it)."""

    name: str
    cs_api: str
    signing_key: str | None
    token: str
    ca_file: str | None


def _quiet_log_config(path: Path, log_file: Path) -> str:
    """WARNING and up only, access lines included: a log line per request is a cost mmr does not
    pay either."""
    config = {"version": 1, "formatters": {"plain": {"format": "%(asctime)s %(name)s %(message)s"}},
              "handlers": {"main": {"class": "logging.FileHandler", "formatter": "plain",
                                    "filename": str(log_file)}},
              "root": {"level": "WARNING", "handlers": ["main"]},
              "disable_existing_loggers": False}
    path.write_text(yaml.safe_dump(config))
    return str(path)


def ensure_synapse_extras() -> None:
    """Synapse's URL previews need its `url-preview` extra (beautifulsoup4) in its venv."""
    import subprocess

    from tests.infra.synapse import synapse_python

    python = str(synapse_python())
    if subprocess.run([python, "-c", "import bs4"], capture_output=True).returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "-q", "beautifulsoup4>=4.13.0"],
                       check=True)


@contextlib.contextmanager
def synapse_target(work: Path, name: str, tls: tuple[Path, Path],
                   extra: dict[str, Any] | None = None) -> Iterator[Target]:
    from tests.infra.synapse import start_synapse

    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "tls_certificate_path": str(tls[0]), "tls_private_key_path": str(tls[1]),
        "max_upload_size": f"{MAX_UPLOAD_BYTES // (1024 * 1024)}M",
        "log_config": _quiet_log_config(folder / "quiet-log.yaml", folder / "warnings.log"),
        "url_preview_enabled": True,
        "url_preview_ip_range_blacklist": ["10.0.0.0/8"],
        "url_preview_ip_range_whitelist": ["127.0.0.1"],
        "rc_media_create": {"per_second": 100000, "burst_count": 1000000},
        **(extra or {}),
    }
    server = start_synapse(folder / "hs", federation_tls=True, extra_config=config)
    try:
        user = server.register_user("bench", "benchpass")
        assert server.process is not None
        target = Target(name, "synapse", server.client_url, user.access_token, server.server_name,
                        pools={"*": [ProcessTree((server.process.pid,))]})
        target.state["server"] = server
        yield target
    finally:
        server.stop()


def homeserver_of(synapse: Target, tls: tuple[Path, Path]) -> Homeserver:
    server = synapse.state["server"]
    return Homeserver(server.server_name, server.client_url, str(server.signing_key_path),
                      synapse.token, str(tls[0]))


# --- mmr ----------------------------------------------------------------------------------------


def mmr_sections(homeserver: Homeserver | None) -> dict[str, Any]:
    """The config both mmr shapes share: the fronted homeserver, loopback allowed for previews
    and federation, rate limits off, a 1 GiB upload allowed."""
    sections: dict[str, Any] = {
        "rateLimit": {"enabled": False},
        "uploads": {"maxBytes": MAX_UPLOAD_BYTES},
        "urlPreviews": {"allowedNetworks": ["127.0.0.1/32"], "disallowedNetworks": []},
        "sharedSecretAuth": {"enabled": True, "token": SECRET},
    }
    if homeserver is None:
        sections["homeservers"] = [{"name": "localhost", "csApi": ""}]
    else:
        sections["homeservers"] = [{"name": homeserver.name, "csApi": homeserver.cs_api,
                                    "signingKeyPath": homeserver.signing_key}]
        sections["federation"] = {"deniedNetworks": LOOPBACK_ALLOWED_DENY_LIST,
                                  "caFile": homeserver.ca_file}
    return sections


def _identity(homeserver: Homeserver | None) -> tuple[str, str]:
    """(token, homeserver name) a client of the fronted homeserver uses."""
    if homeserver is None:
        return SECRET, "localhost"
    return homeserver.token, homeserver.name


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        current = merged.get(key)
        merged[key] = (deep_merge(current, value)
                       if isinstance(current, dict) and isinstance(value, dict) else value)
    return merged


@contextlib.contextmanager
def mmr_embedded_target(work: Path, homeserver: Homeserver | None,
                        name: str = "mmr-embedded",
                        variant: dict[str, Any] | None = None) -> Iterator[Target]:
    """The embedded default; `variant` (config sections) is layered over it for an A/B row."""
    from tests.infra.processes import start_mmr

    data = work / name
    data.mkdir(parents=True)
    config = deep_merge({
        "repo": {"tempPath": str(data / "tmp"), "logLevel": "warning"},
        "database": {"sqlite": str(data / "mmr.db")},
        "datastores": [{"id": "local", "type": "file", "forKinds": ["all"],
                        "opts": {"path": str(data / "media")}}],
        **mmr_sections(homeserver),
    }, variant or {})
    path = write_config(data / "config.yaml", config)
    processes = [start_mmr(name, ["serve", "--config", path], data / "logs")]

    def restart(target: Target, pool: str) -> None:
        processes[-1].stop()
        processes.append(start_mmr(f"{name}-{len(processes)}", ["serve", "--config", path],
                                   data / "logs"))
        processes[-1].wait_healthy()
        wait_ready(processes[-1].url)
        target.url = processes[-1].url
        target.pools = {"*": [ProcessTree((processes[-1].process.pid,))]}

    try:
        processes[-1].wait_healthy()
        token, server_name = _identity(homeserver)
        yield Target(name, "mmr", processes[-1].url, token, server_name, host=server_name,
                     pools={"*": [ProcessTree((processes[-1].process.pid,))]}, restart=restart)
    finally:
        processes[-1].stop()


def wait_ready(url: str, timeout: float = 60) -> None:
    """Until /readyz answers 200: the database, coordination and datastores answer."""
    from tests.infra.processes import wait_for_200

    if not wait_for_200(f"{url}/readyz", timeout):
        raise RuntimeError(f"{url}/readyz not 200 within {timeout:.0f} s")


CLUSTER_COUNTS = {"upload": 1, "download": 2, "thumbnail": 1, "preview": 1}


@contextlib.contextmanager
def mmr_cluster_target(work: Path, homeserver: Homeserver | None,
                       redis_url: str | None) -> Iterator[Target]:
    """`mmr cluster up` in a folder of this run, with the bench's config layered over it."""
    from mmr.devcluster.cluster import UpOptions, down, restart_member, up

    folder = work / "mmr-cluster"
    folder.mkdir(parents=True)
    extra = folder / "bench.yaml"
    sections = mmr_sections(homeserver)
    sections["repo"] = {"logLevel": "warning", "bindAddress": "127.0.0.1",
                        "tempPath": str(folder / "tmp"), "logDirectory": str(folder / "logs"),
                        "trustedProxies": ["127.0.0.1/32"]}
    extra.write_text(yaml.safe_dump(sections))
    try:
        state = up(UpOptions(folder, counts=dict(CLUSTER_COUNTS), port=0, redis=redis_url,
                             extra_config=extra))
        pids = {started.name: started.pid for started in state.started}
        pools: dict[str, list[ProcessTree]] = {}
        for member in state.members:
            pools.setdefault(member.service, []).append(ProcessTree((pids[member.name],)))
        extra_trees = [ProcessTree((pids[name],)) for name in ("nginx", "seaweedfs") if name in pids]
        store = [ProcessTree((pids["seaweedfs"],))] if "seaweedfs" in pids else []
        port = state.url.rsplit(":", 1)[1]
        token, name = _identity(homeserver)

        def restart(target: Target, pool: str) -> None:
            members = [m for m in state.members if m.service == pool]
            target.pools[pool] = [ProcessTree((restart_member(state, m.name),)) for m in members]
            for member in members:
                wait_ready(f"http://127.0.0.1:{member.port}")

        target = Target("mmr-cluster", "mmr", f"http://127.0.0.1:{port}", token, name, host=name,
                        pools=pools, extra=extra_trees, restart=restart)
        target.state["cluster"] = state
        target.state["store"] = store  # the object store, whose CPU other fronts share
        yield target
    finally:
        down(folder, purge=True)


@dataclass
class PoolCommand:
    """One `mmr serve SERVICE` process of a pool started beside the cluster."""

    args: list[str]  # after `mmr serve SERVICE --config DIR --host 127.0.0.1 --port PORT`
    env: dict[str, str]
    service: str = "download"


@contextlib.contextmanager
def download_pool_target(cluster: Target, work: Path, name: str, commands: list[PoolCommand],
                         layer: dict[str, Any] | Callable[[Path], dict[str, Any]],
                         file_datastores: dict[str, str] | None = None) -> Iterator[Target]:
    """Download processes on the cluster's config with `layer` on top, behind an nginx
    rendered like the cluster's whose download upstream is them (the other pools stay the
    cluster's): the same media, stored once, served another way. With upload processes among
    `commands`, the target stores its own media through them instead."""
    import os
    import shutil
    import subprocess

    from mmr.deploy.nginx_conf import render_mmr_conf
    from mmr.devcluster.cluster import ACCESS_LOG_FORMAT, POOL_RANGES
    from mmr.devcluster.nginx import start_nginx
    from tests.infra.http_server import free_port
    from tests.infra.processes import MmrProcess, mmr_command

    state = cluster.state["cluster"]
    folder = work / name
    config_dir = folder / "config"
    shutil.copytree(Path(state.folder) / "config", config_dir)
    (config_dir / "60-bench-pool.yaml").write_text(yaml.safe_dump(
        layer(config_dir) if callable(layer) else layer))
    logs = folder / "logs"
    logs.mkdir(parents=True)
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("MMR_")}
    processes: list[MmrProcess] = []
    nginx = None
    try:
        for index, command in enumerate(commands):
            port = free_port()
            argv = [*mmr_command(), "serve", command.service, "--config", str(config_dir),
                    "--host", "127.0.0.1", "--port", str(port), *command.args]
            stdout = logs / f"{command.service}-{index}.stdout"
            stderr = logs / f"{command.service}-{index}.stderr"
            with open(stdout, "wb") as out, open(stderr, "wb") as err:
                popen = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**base_env, **command.env})
            processes.append(MmrProcess(f"{name}-{command.service}-{index}", argv, popen, port,
                                        stdout, stderr))
        for process in processes:
            process.wait_healthy()
        upstreams = {service: [f"127.0.0.1:{m.port}" for m in state.members
                               if m.service == service] for service in POOL_RANGES}
        pools: dict[str, list[ProcessTree]] = {}
        for command, process in zip(commands, processes, strict=True):
            if command.service not in pools:
                upstreams[command.service] = []
            upstreams[command.service].append(f"127.0.0.1:{process.port}")
            pools.setdefault(command.service, []).append(ProcessTree((process.process.pid,)))
        nginx = start_nginx(render_mmr_conf(upstreams, "127.0.0.1:${NGINX_PORT}", "0",
                                            file_datastores),
                            folder / "nginx", log_format=ACCESS_LOG_FORMAT)
        target = Target(name, "mmr", nginx.url, cluster.token, cluster.server_name,
                        host=cluster.host, pools=pools,
                        extra=[ProcessTree((nginx.process.pid,)), *cluster.state["store"]])
        if "upload" not in pools:
            target.state["files-from"] = cluster  # the same media, stored once
        yield target
    finally:
        if nginx is not None:
            nginx.stop()
        for process in processes:
            process.stop()


def download_workers_target(cluster: Target, work: Path,
                            workers: int) -> contextlib.AbstractContextManager[Target]:
    """`mmr serve download --workers N` (MACHINE_ID=auto, one port) behind an nginx like the
    cluster's: the `download-workers` row compares N=1 with N=2 under the same client load."""
    # Metrics off: N workers would share the one metrics port of the generated config.
    return download_pool_target(
        cluster, work, f"mmr-workers-{workers}",
        [PoolCommand(["--workers", str(workers)], {"MACHINE_ID": "auto"})],
        {"metrics": {"enabled": False}})


def cluster_accel_target(cluster: Target, work: Path) -> contextlib.AbstractContextManager[Target]:
    """The cluster's download pool again (as many processes, each with its own metrics port)
    with `downloads.accelRedirect` on: the pool authorises, nginx fetches the bytes from S3
    through a presigned GET (deploy/nginx's internal location) and sends them."""
    from tests.infra.http_server import free_port

    count = CLUSTER_COUNTS["download"]
    return download_pool_target(
        cluster, work, "mmr-cluster-accel",
        [PoolCommand([], {"MACHINE_ID": "auto", "MMR_METRICS_PORT": str(free_port())})
         for _ in range(count)],
        {"downloads": {"accelRedirect": {"enabled": True}}})


def cluster_accel_file_target(cluster: Target,
                              work: Path) -> contextlib.AbstractContextManager[Target]:
    """As `cluster_accel_target`, but the media in a file datastore (a directory every process
    on this host shares) that nginx sends from with sendfile, as nginx-static does: its own
    upload process stores the row's media there (the cluster's S3 stays configured after it)."""
    from tests.infra.http_server import free_port

    media = work / "mmr-cluster-accel-file" / "media"
    media.mkdir(parents=True)

    def layer(config_dir: Path) -> dict[str, Any]:
        generated = yaml.safe_load((config_dir / "00-cluster.yaml").read_text())
        local = {"id": "local", "type": "file", "forKinds": ["all"], "opts": {"path": str(media)}}
        return {"downloads": {"accelRedirect": {"enabled": True}},
                "datastores": [local, *generated["datastores"]]}

    def command(service: str) -> PoolCommand:
        return PoolCommand([], {"MACHINE_ID": "auto", "MMR_METRICS_PORT": str(free_port())},
                           service)

    return download_pool_target(
        cluster, work, "mmr-cluster-accel-file",
        [command("upload"), *(command("download") for _ in range(CLUSTER_COUNTS["download"]))],
        layer, {"local": str(media)})


# --- nginx --------------------------------------------------------------------------------------


def static_conf(root: Path) -> str:
    return f"""
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:${{NGINX_PORT}};
        root {root};
        location / {{ }}
    }}
"""


@contextlib.contextmanager
def nginx_static(work: Path, name: str = "nginx") -> Iterator[Target]:
    from mmr.devcluster.nginx import start_nginx

    root = work / name / "files"
    root.mkdir(parents=True)
    (root / "index.html").write_text("ok")
    nginx = start_nginx(static_conf(root), work / name / "run")
    try:
        yield Target(name, "nginx", nginx.url, "", "", pools={"*": [ProcessTree((nginx.process.pid,))]},
                     static_dir=root)
    finally:
        nginx.stop()


def describe_versions(synapse_present: bool) -> dict[str, str]:
    """What ran, for RESULTS.md."""
    import platform
    import subprocess

    versions = {"python": platform.python_version()}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        versions["mmr"] = version("mmr")
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse",
                                 "--short", "HEAD"], capture_output=True, text=True, check=True)
        versions["mmr"] = f"{versions.get('mmr', '?')} at {commit.stdout.strip()}"
    with contextlib.suppress(Exception):
        from mmr.devcluster.nginx import ensure_nginx

        nginx = subprocess.run([str(ensure_nginx()), "-v"], capture_output=True, text=True)
        versions["nginx"] = nginx.stderr.strip().split("/", 1)[-1]
    with contextlib.suppress(Exception):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        versions["wrk"] = (wrk.stdout + wrk.stderr).split()[1]
    if synapse_present:
        with contextlib.suppress(Exception):
            from tests.infra.synapse import synapse_python

            synapse = subprocess.run([str(synapse_python()), "-c",
                                      "import synapse; print(synapse.__version__)"],
                                     capture_output=True, text=True)
            # Its venv sits inside this repo, so Synapse appends this repo's git branch.
            versions["synapse"] = synapse.stdout.strip().split(" ")[0]
    return versions
