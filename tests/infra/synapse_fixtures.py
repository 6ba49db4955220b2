"""Session fixtures for real Synapse homeservers; import them in your test folder's conftest.py:

    from tests.infra.synapse_fixtures import synapse_factory, synapse_homeserver  # noqa: F401

`synapse_homeserver` is a plain homeserver (server name `localhost`, client API on
`client_url`) with the `BRIDGE_APPSERVICE` registered. `synapse_factory(**options)` starts more,
with `start_synapse`'s options (e.g. `federation_tls=True` for a federation peer).

Several conftests may import these: they all share one factory, so the session starts one
`synapse_homeserver`, not one per folder, and the last teardown stops every server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.synapse import (
    AppserviceRegistration,
    SynapseServer,
    start_synapse,
    write_self_signed_cert,
)

BRIDGE_APPSERVICE = AppserviceRegistration(
    id="bridge",
    as_token="as-token-test",
    hs_token="hs-token-test",
    sender_localpart="bridgebot",
    user_regex="@bridge_.*",
)


class SynapseFactory:
    """Starts Synapses in numbered folders of one directory and stops them all at the end."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.servers: list[SynapseServer] = []
        self._numbers = itertools.count()
        self._homeserver: SynapseServer | None = None

    def __call__(self, **options: Any) -> SynapseServer:
        server = start_synapse(self.base_dir / f"hs{next(self._numbers)}", **options)
        self.servers.append(server)
        return server

    def homeserver(self) -> SynapseServer:
        """The shared plain homeserver with the bridge appservice, started on first use."""
        if self._homeserver is None:
            self._homeserver = self(appservices=[BRIDGE_APPSERVICE])
        return self._homeserver

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self._homeserver = None


class _SharedFactory:
    """One factory per session however many conftests define the fixtures, counted in and out
    so the last fixture teardown stops the servers."""

    factory: SynapseFactory | None = None
    users = 0


@pytest.fixture(scope="session")
def synapse_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseFactory]:
    factory = _SharedFactory.factory
    if factory is None:
        factory = _SharedFactory.factory = SynapseFactory(tmp_path_factory.mktemp("synapse"))
    _SharedFactory.users += 1
    try:
        yield factory
    finally:
        _SharedFactory.users -= 1
        if _SharedFactory.users == 0:
            factory.stop_all()
            _SharedFactory.factory = None


@pytest.fixture(scope="session")
def synapse_homeserver(synapse_factory: SynapseFactory) -> SynapseServer:
    return synapse_factory.homeserver()


# Federation peers: `synapse_a` is the homeserver mmr fronts (mmr signs as A with A's key);
# `synapse_b` is a remote. Both serve federation over TLS with one certificate made here.
@pytest.fixture(scope="session")
def test_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed certificate (127.0.0.1) and key that every TLS peer here serves.

    One certificate, because OpenSSL finds trust anchors by subject name, and certificates made
    alike (same subject, no key identifiers) would shadow each other in a bundle.
    """
    return write_self_signed_cert(tmp_path_factory.mktemp("tls"))


def _tls_options(test_tls: tuple[Path, Path]) -> dict[str, Any]:
    cert, key = test_tls
    return {"extra_config": {"tls_certificate_path": str(cert), "tls_private_key_path": str(key)}}


@pytest.fixture(scope="session")
def synapse_a(synapse_factory: SynapseFactory, test_tls: tuple[Path, Path]) -> SynapseServer:
    return synapse_factory(federation_tls=True, **_tls_options(test_tls))


@pytest.fixture(scope="session")
def synapse_b(synapse_factory: SynapseFactory, test_tls: tuple[Path, Path]) -> SynapseServer:
    return synapse_factory(federation_tls=True, **_tls_options(test_tls))
