"""Quarantine: every record with the same bytes is hidden at once, the bytes are refused on
upload afterwards, and unquarantine brings them back; local admins act on their homeserver's
records only, and only while `quarantine.allowLocalAdmins`."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import TEST_SECRET
from tests.services.admin.conftest import ADMIN_PREFIX, Callers, Deployment


async def download_status(deployment: Deployment, token: str, media: tuple[str, str]) -> int:
    async with deployment.client(token, media=True) as http:
        response = await http.get(f"/_matrix/client/v1/media/download/{media[0]}/{media[1]}")
    return response.status_code


async def upload_status(deployment: Deployment, token: str, data: bytes) -> int:
    async with deployment.client(token, media=True) as http:
        response = await http.post("/_matrix/media/v3/upload", content=data,
                                   headers={"Content-Type": "application/octet-stream"})
    return response.status_code


async def post(deployment: Deployment, token: str, path: str, **kw: Any) -> Any:
    async with deployment.client(token) as http:
        return await http.post(ADMIN_PREFIX + path, **kw)


async def test_quarantine_hides_every_copy_and_refuses_the_bytes_until_released(
    deployment: Deployment, callers: Callers
) -> None:
    data = b"contraband %d" % time.time_ns()
    alices = await deployment.upload(callers.alice.access_token, data)
    bobs = await deployment.upload(callers.bob.access_token, data)
    answer = await post(deployment, TEST_SECRET, f"/quarantine/{alices[0]}/{alices[1]}")
    assert answer.status_code == 200 and answer.json() == {"num_quarantined": 2}
    assert await download_status(deployment, callers.alice.access_token, alices) == 404
    assert await download_status(deployment, callers.bob.access_token, bobs) == 404
    assert await upload_status(deployment, callers.bob.access_token, data) == 403

    released = await post(deployment, TEST_SECRET, f"/unquarantine/{bobs[0]}/{bobs[1]}")
    assert released.json() == {"num_quarantined": 2}
    assert await download_status(deployment, callers.alice.access_token, alices) == 200
    assert await upload_status(deployment, callers.bob.access_token, data) == 200


async def test_quarantine_of_a_users_and_a_servers_media(deployment: Deployment, callers: Callers) -> None:
    run = time.time_ns()
    first = await deployment.upload(callers.bob.access_token, b"one %d" % run)
    second = await deployment.upload(callers.bob.access_token, b"two %d" % run)
    user = await post(deployment, callers.hsadmin.access_token, f"/quarantine/user/{callers.bob.user_id}")
    assert user.status_code == 200
    assert user.json()["num_quarantined"] >= 2
    assert await download_status(deployment, callers.bob.access_token, first) == 404
    server = await post(deployment, TEST_SECRET, "/unquarantine/server/localhost")
    assert server.json()["num_quarantined"] >= 2
    assert await download_status(deployment, callers.bob.access_token, second) == 200


async def test_local_admins_quarantine_only_while_allowed(deploy: Any, callers: Callers) -> None:
    deployment: Deployment = deploy("embedded", quarantine={"allowLocalAdmins": False})
    media = await deployment.upload(callers.alice.access_token, b"local %d" % time.time_ns())
    refused = await post(deployment, callers.hsadmin.access_token, f"/quarantine/{media[0]}/{media[1]}")
    assert refused.status_code == 403
    assert (await post(deployment, TEST_SECRET, f"/quarantine/{media[0]}/{media[1]}")).status_code == 200


async def test_local_admins_cannot_quarantine_other_servers_media(
    deployment: Deployment, callers: Callers
) -> None:
    other = await post(deployment, callers.hsadmin.access_token, "/quarantine/remote.example/abc")
    assert other.status_code == 400
    assert (await post(deployment, callers.hsadmin.access_token,
                       "/quarantine/server/remote.example")).status_code == 403
