"""Local admins are the homeserver's admins, asked of the real Synapse through its admin whois
(Synapse's path or the spec's, by `adminApiKind`) with the caller's own token, and the answer is
cached like token checks; global admins never cost a homeserver call."""

from __future__ import annotations

import pytest

from tests.infra.synapse import SynapseServer
from tests.services.admin.conftest import ADMIN_PREFIX, Callers, Deployment

STATS = ADMIN_PREFIX + "/usage/localhost/users-stats"


@pytest.mark.parametrize(("api_kind", "whois_path"), [
    ("synapse", "/_synapse/admin/v1/whois/"),
    ("matrix", "/_matrix/client/v3/admin/whois/"),
])
async def test_local_admins_are_asked_of_the_homeserver_once_per_cache_period(
    deploy: object, callers: Callers, synapse_homeserver: SynapseServer, api_kind: str,
    whois_path: str,
) -> None:
    deployment: Deployment = deploy("embedded", api_kind=api_kind)  # type: ignore[operator]
    fresh_admin = synapse_homeserver.register_user("mmr_hsadmin", admin=True)  # a new token
    fresh_user = synapse_homeserver.register_user("mmr_alice")
    before = synapse_homeserver.count_requests(whois_path)
    for _ in range(3):
        async with deployment.client(fresh_admin.access_token) as http:
            assert (await http.get(STATS)).status_code == 200
        async with deployment.client(fresh_user.access_token) as http:
            refused = await http.get(STATS)
        assert refused.status_code == 403 and refused.json()["errcode"] == "M_FORBIDDEN"
    synapse_homeserver.wait_for_requests(whois_path, before + 2)
    assert synapse_homeserver.count_requests(whois_path) == before + 2, "one check per token"

    async with deployment.client(callers.operator.access_token) as http:
        assert (await http.get(STATS)).status_code == 200
    assert synapse_homeserver.count_requests(whois_path) == before + 2, "admins need no whois"


async def test_an_unknown_token_is_401_and_a_missing_one_too(deploy: object) -> None:
    deployment: Deployment = deploy("embedded")  # type: ignore[operator]
    async with deployment.client("not-a-token") as http:
        unknown = await http.get(STATS)
    async with deployment.client(None) as http:
        missing = await http.get(STATS)
    assert unknown.status_code == 401 and unknown.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert missing.status_code == 401 and missing.json()["errcode"] == "M_MISSING_TOKEN"
