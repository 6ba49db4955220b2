"""Every admin endpoint with a caller it allows and one it refuses, in the embedded default
and in a cluster: global admins (the shared secret, users in `admins`), local admins (admins of
the homeserver, asked of the real Synapse), uploaders for their own media, 403 for others and
401 without a token. The export routes that take an export ID have no refused caller: the ID
is the capability, as in matrix-media-repo (tests/services/archives)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import TEST_SECRET
from tests.infra.synapse import SynapseServer
from tests.services.admin.conftest import ADMIN_PREFIX, T2BOT_PREFIX, Callers, Deployment
from tests.services.admin.helpers import room_with_media


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # `admin/...` runs under both admin prefixes; {media} {user} {room} filled in
    allowed: str  # a Callers attribute, or "secret"
    refused: str
    body: dict[str, str] | None = None
    ok: int = 200  # the allowed caller's answer


GLOBAL, LOCAL = "operator", "hsadmin"
ROWS = [
    # global admins only: a local admin is refused
    Row("POST", "admin/purge/remote?before_ts=1", GLOBAL, LOCAL),
    Row("POST", "admin/purge_remote?before_ts=1", "secret", LOCAL),
    Row("POST", "admin/purge/old?before_ts=1", GLOBAL, LOCAL),
    Row("GET", "admin/tasks/all", GLOBAL, LOCAL),
    Row("GET", "admin/tasks/unfinished", GLOBAL, LOCAL),
    Row("GET", "admin/usage/localhost", GLOBAL, LOCAL),
    Row("GET", "admin/usage/localhost/users?user_id={user}", GLOBAL, LOCAL),
    Row("GET", "admin/usage/localhost/uploads?mxc=mxc://{media}", GLOBAL, LOCAL),
    Row("GET", "admin/audit?limit=5", GLOBAL, LOCAL),
    Row("GET", "admin/datastores", GLOBAL, LOCAL),
    Row("GET", "admin/datastores/{datastore}/size_estimate", GLOBAL, LOCAL),
    # allowed, then told there is no such target (test_datastores.py runs transfers)
    Row("POST", "admin/datastores/{datastore}/transfer_to/nowhere", GLOBAL, LOCAL, ok=400),
    # without archiving.selfService (tests/services/archives has the self-service cases)
    Row("POST", "admin/user/{user}/export", GLOBAL, LOCAL),
    Row("POST", "admin/server/localhost/export", GLOBAL, LOCAL),
    Row("POST", "admin/import/nosuchimport/part", GLOBAL, LOCAL, ok=404),
    Row("POST", "admin/import/nosuchimport/close", GLOBAL, LOCAL, ok=404),
    # allowed, then told the server cannot be reached (test_federation_check.py reaches one)
    Row("GET", "admin/federation/test/127.0.0.1:1", GLOBAL, LOCAL, ok=502),
    Row("POST", "/_synapse/admin/v1/purge_media_cache?before_ts=1", GLOBAL, LOCAL),
    Row("POST", "/_matrix/client/r0/admin/purge_media_cache?before_ts=1", GLOBAL, LOCAL),
    Row("POST", "/_matrix/client/unstable/io.t2bot.media/admin/purge_media_cache?before_ts=1",
        GLOBAL, LOCAL),
    # global or local admins: a plain user is refused
    Row("POST", "admin/purge/quarantined", LOCAL, "alice"),
    Row("POST", "admin/purge/user/{other_user}", LOCAL, "alice"),
    Row("POST", "admin/purge/server/localhost?before_ts=1", LOCAL, "alice"),
    Row("POST", "admin/purge/room/{room}", LOCAL, "alice"),
    Row("GET", "admin/media/{media}/attributes", LOCAL, "alice"),
    Row("POST", "admin/media/{media}/attributes", GLOBAL, "alice", {"purpose": "none"}),
    Row("GET", "admin/usage/localhost/users-stats", LOCAL, "alice"),
    Row("GET", "/_synapse/admin/v1/statistics/users/media", LOCAL, "alice"),
    Row("POST", "admin/quarantine/{media}", LOCAL, "alice"),
    Row("POST", "admin/unquarantine/{media}", LOCAL, "alice"),
    Row("POST", "admin/quarantine/room/{room}", LOCAL, "alice"),
    Row("POST", "admin/unquarantine/room/{room}", LOCAL, "alice"),
    Row("POST", "admin/quarantine/user/{other_user}", LOCAL, "alice"),
    Row("POST", "admin/unquarantine/user/{other_user}", LOCAL, "alice"),
    Row("POST", "admin/quarantine/server/localhost", GLOBAL, "alice"),
    Row("POST", "admin/unquarantine/server/localhost", LOCAL, "alice"),
    Row("POST", "/_synapse/admin/v1/media/quarantine/{media}", LOCAL, "alice"),
    Row("POST", "/_synapse/admin/v1/media/unquarantine/{media}", LOCAL, "alice"),
    Row("POST", "/_synapse/admin/v1/room/{room}/media/quarantine", LOCAL, "alice"),
    Row("POST", "/_synapse/admin/v1/user/{other_user}/media/quarantine", LOCAL, "alice"),
    Row("POST", "/_matrix/client/unstable/admin/quarantine_media/{room}", LOCAL, "alice"),
    Row("POST", "/_matrix/client/r0/admin/quarantine_media/{room}", LOCAL, "alice"),
    # one item: its uploader (alice) may purge it, another user may not
    Row("POST", "admin/purge/{media}", "alice", "bob"),
    Row("DELETE", "/_matrix/media/unstable/download/{media}", "alice", "bob"),
    Row("DELETE", "/_matrix/media/unstable/io.t2bot.media/download/{media}", "alice", "bob"),
    Row("DELETE", "/_synapse/admin/v1/media/{media}", "alice", "bob"),
]


def _token(callers: Callers, who: str) -> str:
    return TEST_SECRET if who == "secret" else getattr(callers, who).access_token


def _paths(path: str) -> list[str]:
    if path.startswith("admin/"):
        rest = path[len("admin"):]
        return [ADMIN_PREFIX + rest, T2BOT_PREFIX + rest]
    return [path]


async def test_every_endpoint_allows_its_callers_and_refuses_the_others(
    deployment: Deployment, callers: Callers, synapse_homeserver: SynapseServer
) -> None:
    failures: list[str] = []
    in_room = await deployment.upload(callers.alice.access_token, b"in the room")
    room = room_with_media(synapse_homeserver, callers.hsadmin, [f"mxc://{in_room[0]}/{in_room[1]}"])
    for row in ROWS:
        for path in _paths(row.path):
            # Fresh media for each call: purges and quarantines change what they touch.
            server, media_id = await deployment.upload(callers.alice.access_token, path.encode())
            url = path.format(media=f"{server}/{media_id}", user=callers.alice.user_id,
                              other_user=callers.bob.user_id, room=room,
                              datastore=deployment.config.datastores[0].id)
            for who, want in ((row.refused, 403), (None, 401), (row.allowed, row.ok)):
                token = _token(callers, who) if who else None
                async with deployment.client(token) as http:
                    response = await http.request(row.method, url, json=row.body)
                if response.status_code != want:
                    failures.append(f"{row.method} {url} as {who}: {response.status_code} "
                                    f"(want {want}) {response.text[:200]}")
                elif want in (401, 403):
                    want_code = "M_FORBIDDEN" if want == 403 else "M_MISSING_TOKEN"
                    if response.json().get("errcode") != want_code:
                        failures.append(f"{row.method} {url} as {who}: {response.text[:200]}")
    assert not failures, "\n".join(failures)


async def test_task_status_of_a_purge_is_global_admin_only(
    deployment: Deployment, callers: Callers
) -> None:
    async with deployment.client() as http:
        purge = await http.post(ADMIN_PREFIX + "/purge/remote", params={"before_ts": 1})
    task_id = purge.json()["task_id"]
    async with deployment.client(callers.hsadmin.access_token) as http:
        assert (await http.get(f"{ADMIN_PREFIX}/tasks/{task_id}")).status_code == 403
    async with deployment.client(callers.operator.access_token) as http:
        status = await http.get(f"{T2BOT_PREFIX}/tasks/{task_id}")
    assert status.status_code == 200
    assert status.json()["task_name"] == "purge_media"


@pytest.mark.parametrize("kind", ["embedded", "cluster"])
async def test_version_answers_anyone_in_matrix_media_repos_shape(deploy: object, kind: str) -> None:
    deployment: Deployment = deploy(kind)  # type: ignore[operator]
    async with deployment.client(None) as http:
        response = await http.get("/_matrix/media/version")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"Version", "GitCommit", "unstable_features"}
    assert body["Version"]
