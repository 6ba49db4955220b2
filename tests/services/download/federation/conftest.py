"""Real federation peers for the download service.

* `synapse_a` is the homeserver mmr fronts for outbound requests: mmr signs as A with A's
  signing key (`signingKeyPath`), so a peer checks our signatures by fetching A's keys from A.
* `synapse_b` is the remote that holds media (and, for inbound tests, the server that fetches
  ours). Both serve federation over TLS on `127.0.0.1:<port>` with a certificate they made.
* mmr serves its federation routes over TLS straight from uvicorn (`serve_mmr(tls=True)`), under
  the server name `127.0.0.1:<its port>`: what a peer resolves for `mxc://127.0.0.1:<port>/...`.

mmr trusts the peers' certificate (they all serve one, made here) through `federation.caFile`
instead of turning verification off, and allows loopback explicitly: the test config drops 127.0.0.0/8
from `federation.deniedNetworks`, whose default keeps denying every private range.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import uvicorn

from mmr.embedded import all_routers
from shared.config import parse_config
from shared.db.migrate import run_migrations
from shared.web.app import make_app
from tests.conftest import RunningMmr, cluster_raw_config, embedded_raw_config, new_bucket
from tests.infra.http_server import ServerThread, free_port
from tests.infra.seaweedfs import S3Server
from tests.infra.synapse import SynapseServer
from tests.services.download.conftest import public_bucket

LOOPBACK_ALLOWED_DENY_LIST = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


class TlsServerThread(ServerThread):
    """`ServerThread` serving HTTPS with the given certificate."""

    def __init__(self, app: Any, port: int, cert: Path, key: Path) -> None:
        super().__init__(app, port)
        self.url = f"https://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", ssl_certfile=str(cert), ssl_keyfile=str(key),
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       daemon=True)


class Mmr(RunningMmr):
    """A running mmr plus the server names it answers for."""

    outbound_name: str  # signs outbound requests as this (Synapse A's name)
    own_name: str | None  # with TLS: the name peers use for media stored here

    def as_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A client of A's users (what a client of the fronted homeserver sends)."""
        headers = {"Host": self.outbound_name, **kwargs.pop("headers", {})}
        return self.client(headers=headers, verify=False, **kwargs)

    def as_owner(self, **kwargs: Any) -> httpx.AsyncClient:
        """A client of the homeserver whose media peers fetch from us (TLS servers only)."""
        assert self.own_name is not None
        headers = {"Host": self.own_name, **kwargs.pop("headers", {})}
        return self.client(headers=headers, verify=False, **kwargs)


class ServeMmr(Protocol):
    def __call__(
        self, mode: str = "embedded", *, tls: bool = False, public: bool = False,
        machine_id: int = 0, **overrides: Any,
    ) -> Mmr: ...


def _merge(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for section, values in overrides.items():
        current = raw.get(section)
        raw[section] = {**current, **values} if isinstance(current, dict) else values
    return raw


@pytest.fixture
def mmr_raw_config(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    synapse_a: SynapseServer, test_tls: tuple[Path, Path],
) -> Any:
    """`mmr_raw_config(mode, own_name=None, public=False, **overrides) -> dict` (as in YAML).

    Fronts Synapse A (its name, client API and signing key); with `own_name`, also serves that
    homeserver's media. Cluster configs get a fresh bucket on a migrated database.
    """

    def make(
        mode: str, own_name: str | None = None, public: bool = False, **overrides: Any
    ) -> dict[str, Any]:
        data_dir = tmp_path_factory.mktemp("mmr")
        if mode == "cluster":
            s3: S3Server = request.getfixturevalue("s3_server")
            bucket = public_bucket(s3) if public else new_bucket(s3)
            raw = cluster_raw_config(data_dir, request.getfixturevalue("pg_url"),
                                     request.getfixturevalue("redis_url"), s3, bucket)
            if public:
                raw["datastores"][0]["opts"]["publicBaseUrl"] = f"{s3.endpoint}/{bucket}"
            run_migrations(parse_config(raw).database.url)
        else:
            raw = embedded_raw_config(data_dir)
        raw["homeservers"] = [{"name": synapse_a.server_name, "csApi": synapse_a.client_url,
                               "signingKeyPath": str(synapse_a.signing_key_path)}]
        if own_name is not None:
            raw["homeservers"].append({"name": own_name, "csApi": ""})
        raw["federation"] = {"deniedNetworks": LOOPBACK_ALLOWED_DENY_LIST,
                             "caFile": str(test_tls[0])}
        return _merge(raw, overrides)

    return make


@pytest.fixture
def serve_mmr(
    mmr_raw_config: Any, synapse_a: SynapseServer, test_tls: tuple[Path, Path]
) -> Iterator[ServeMmr]:
    """Start mmr servers (every route in one app) for this test; stopped at its end."""
    with contextlib.ExitStack() as stack:

        def serve(
            mode: str = "embedded", *, tls: bool = False, public: bool = False,
            machine_id: int = 0, **overrides: Any,
        ) -> Mmr:
            port = free_port()
            own_name = f"127.0.0.1:{port}" if tls else None
            config = parse_config(mmr_raw_config(mode, own_name, public, **overrides))
            app = make_app("embedded", all_routers(), config=config, machine_id=machine_id)
            thread = (TlsServerThread(app, port, *test_tls) if tls else ServerThread(app, port))
            stack.enter_context(thread)
            server = Mmr(thread.url, config, Path(str(config.repo.temp_path)).parent)
            server.outbound_name = synapse_a.server_name
            server.own_name = own_name
            return server

        yield serve


@pytest.fixture(scope="session")
def b_user_token(synapse_b: SynapseServer) -> str:
    return synapse_b.register_user("downloader").access_token


@pytest.fixture(scope="session")
def b_uploader_token(synapse_b: SynapseServer) -> str:
    return synapse_b.register_user("uploader").access_token
