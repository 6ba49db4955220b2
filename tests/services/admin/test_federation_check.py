"""`admin/federation/test/{serverName}`: how mmr finds a server, and what its `/version` says,
against a real Synapse serving federation over TLS."""

from __future__ import annotations

from pathlib import Path

from tests.infra.synapse import SynapseServer
from tests.services.admin.conftest import ADMIN_PREFIX, Callers, Deployment

LOOPBACK_ALLOWED_DENY_LIST = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


async def test_federation_test_reports_discovery_and_version(
    deploy: object, callers: Callers, synapse_b: SynapseServer, test_tls: tuple[Path, Path]
) -> None:
    federation = {"caFile": str(test_tls[0]), "deniedNetworks": LOOPBACK_ALLOWED_DENY_LIST}
    deployment: Deployment = deploy("embedded", federation=federation)  # type: ignore[operator]
    path = f"{ADMIN_PREFIX}/federation/test/{synapse_b.server_name}"
    async with deployment.client() as http:
        answer = await http.get(path)
        unreachable = await http.get(f"{ADMIN_PREFIX}/federation/test/127.0.0.1:1")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["base_url"] == f"https://{synapse_b.server_name}"
    assert body["hostname"] == synapse_b.server_name
    assert body["versions_response"]["server"]["name"] == "Synapse"
    assert unreachable.status_code == 502
    async with deployment.client(callers.hsadmin.access_token) as http:
        assert (await http.get(path)).status_code == 403
