"""Purges: what goes (rows, thumbnails, objects no other row uses) and what stays (pinned
media, objects still shared through dedupe, other homeservers' media for local admins)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import update

from shared.db.models import MediaRow
from shared.db.repositories.media import MediaRecord, get_media, insert_media
from shared.db.repositories.thumbnails import list_thumbnails
from shared.runtime import Runtime
from shared.storage.keys import content_key
from tests.conftest import TEST_SECRET
from tests.infra.synapse import SynapseServer
from tests.services.admin.conftest import ADMIN_PREFIX, Callers, Deployment
from tests.services.admin.helpers import png, room_with_media

DAY_MS = 86_400_000


async def record_of(rt: Runtime, server: str, media_id: str) -> MediaRecord | None:
    async with rt.sessions() as session:
        return await get_media(session, server, media_id)


async def object_exists(rt: Runtime, datastore_id: str, location: str) -> bool:
    return await rt.datastores.get(datastore_id).exists(location)


async def add_remote(rt: Runtime, origin: str, media_id: str, data: bytes, age_days: float,
                     quarantined: bool = False) -> MediaRecord:
    """Cached remote media, as a federation fetch would have stored it `age_days` ago."""
    sha = hashlib.sha256(data).hexdigest()
    path = rt.temp_dir / f"remote-{sha[:12]}"
    path.write_bytes(data)
    stored = await rt.datastores.for_kind("remote_media").put_file(content_key(sha), path, "image/png")
    record = MediaRecord(origin=origin, media_id=media_id, upload_name=None, content_type="image/png",
                         user_id=None, sha256=sha, size_bytes=len(data),
                         creation_ts=int(time.time() * 1000) - int(age_days * DAY_MS),
                         datastore_id=stored.datastore_id, location=stored.location,
                         quarantined=quarantined)
    async with rt.sessions() as session:
        await insert_media(session, record)
        await session.commit()
    return record


async def post(deployment: Deployment, token: str, path: str, **kw: Any) -> Any:
    async with deployment.client(token) as http:
        return await http.post(ADMIN_PREFIX + path, **kw)


async def test_a_shared_object_goes_with_its_last_record_and_thumbnails_with_their_media(
    deployment: Deployment, callers: Callers, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(deployment.config)
    data = png(int(time.time()), size=800)  # larger than the thumbnail: its own bytes
    mine = await deployment.upload(callers.alice.access_token, data, "image/png")
    theirs = await deployment.upload(callers.bob.access_token, data, "image/png")
    async with deployment.client(callers.alice.access_token, media=True) as http:
        thumb = await http.get(f"/_matrix/client/v1/media/thumbnail/{mine[0]}/{mine[1]}",
                               params={"width": 32, "height": 32, "method": "scale"})
    assert thumb.status_code == 200
    first = await record_of(rt, *mine)
    assert first is not None
    async with rt.sessions() as session:
        thumbnails = await list_thumbnails(session, *mine)
    assert thumbnails

    purged = await post(deployment, callers.alice.access_token, f"/purge/{mine[0]}/{mine[1]}")
    assert purged.status_code == 200 and purged.json() == {"purged": True}
    assert await record_of(rt, *mine) is None
    async with rt.sessions() as session:
        assert await list_thumbnails(session, *mine) == []
    for thumbnail in thumbnails:
        assert not await object_exists(rt, thumbnail.datastore_id, thumbnail.location)
    assert await object_exists(rt, first.datastore_id, first.location), "bob's copy still uses it"
    async with deployment.client(callers.bob.access_token, media=True) as http:
        download = await http.get(f"/_matrix/client/v1/media/download/{theirs[0]}/{theirs[1]}")
    assert download.status_code == 200 and download.content == data

    async with deployment.client(callers.bob.access_token) as http:
        gone = await http.delete(f"/_matrix/media/unstable/download/{theirs[0]}/{theirs[1]}")
    assert gone.status_code == 200
    assert not await object_exists(rt, first.datastore_id, first.location)
    async with deployment.client(callers.bob.access_token, media=True) as http:
        download = await http.get(f"/_matrix/client/v1/media/download/{theirs[0]}/{theirs[1]}")
    assert download.status_code == 404


async def test_pinned_media_is_never_purged(deployment: Deployment, callers: Callers,
                                            runtime_for: Any) -> None:
    rt: Runtime = await runtime_for(deployment.config)
    pinned = await deployment.upload(callers.alice.access_token, b"keep me %d" % time.time_ns())
    loose = await deployment.upload(callers.alice.access_token, b"let me go %d" % time.time_ns())
    path = f"/media/{pinned[0]}/{pinned[1]}/attributes"
    set_ = await post(deployment, TEST_SECRET, path, json={"purpose": "pinned"})
    assert set_.json() == {"purpose": "pinned"}
    async with deployment.client() as http:
        assert (await http.get(ADMIN_PREFIX + path)).json() == {"purpose": "pinned"}

    purge = await post(deployment, TEST_SECRET, "/purge/user/" + callers.alice.user_id,
                       params={"before_ts": int(time.time() * 1000) + 1000})
    assert purge.status_code == 200
    assert f"mxc://{loose[0]}/{loose[1]}" in purge.json()["affected"]
    assert f"mxc://{pinned[0]}/{pinned[1]}" not in purge.json()["affected"]
    assert await record_of(rt, *pinned) is not None
    single = await post(deployment, callers.alice.access_token, f"/purge/{pinned[0]}/{pinned[1]}")
    assert single.status_code == 403
    assert await record_of(rt, *pinned) is not None

    await post(deployment, TEST_SECRET, path, json={"purpose": "none"})
    single = await post(deployment, callers.alice.access_token, f"/purge/{pinned[0]}/{pinned[1]}")
    assert single.status_code == 200
    assert await record_of(rt, *pinned) is None
    bad = await post(deployment, TEST_SECRET, f"/media/{loose[0]}/{loose[1]}/attributes",
                     json={"purpose": "precious"})
    assert bad.status_code in (400, 404)


async def test_remote_purge_keeps_fresh_and_quarantined_media(
    deployment: Deployment, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(deployment.config)
    run = str(time.time_ns())
    old = await add_remote(rt, "remote.example", f"old{run}", b"old" + run.encode(), age_days=10)
    fresh = await add_remote(rt, "remote.example", f"fresh{run}", b"fresh" + run.encode(), age_days=0)
    bad = await add_remote(rt, "remote.example", f"bad{run}", b"bad" + run.encode(), age_days=10,
                           quarantined=True)
    purge = await post(deployment, TEST_SECRET, "/purge/remote",
                       params={"before_ts": int(time.time() * 1000) - DAY_MS})
    assert purge.status_code == 200
    assert purge.json()["total_removed"] == 1
    assert isinstance(purge.json()["task_id"], int)
    assert await record_of(rt, old.origin, old.media_id) is None
    assert not await object_exists(rt, old.datastore_id, old.location)
    assert await record_of(rt, fresh.origin, fresh.media_id) is not None
    assert await record_of(rt, bad.origin, bad.media_id) is not None

    missing = await post(deployment, TEST_SECRET, "/purge/remote")
    assert missing.status_code == 400


async def test_old_purge_spares_local_media_unless_asked(
    deployment: Deployment, callers: Callers, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(deployment.config)
    run = str(time.time_ns())
    remote = await add_remote(rt, "remote.example", f"r{run}", b"r" + run.encode(), age_days=3)
    local = await deployment.upload(callers.alice.access_token, b"local " + run.encode())
    later = int(time.time() * 1000) + 1000
    first = await post(deployment, TEST_SECRET, "/purge/old", params={"before_ts": later})
    assert f"mxc://{remote.origin}/{remote.media_id}" in first.json()["affected"]
    assert await record_of(rt, *local) is not None
    second = await post(deployment, TEST_SECRET, "/purge/old",
                        params={"before_ts": later, "include_local": "true"})
    assert f"mxc://{local[0]}/{local[1]}" in second.json()["affected"]
    assert await record_of(rt, *local) is None


async def test_local_admins_purge_only_their_homeservers_media(
    deployment: Deployment, callers: Callers, runtime_for: Any, synapse_homeserver: SynapseServer
) -> None:
    rt: Runtime = await runtime_for(deployment.config)
    run = str(time.time_ns())
    remote = await add_remote(rt, "remote.example", f"q{run}", b"q" + run.encode(), age_days=0,
                              quarantined=True)
    local = await deployment.upload(callers.alice.access_token, b"quarantine me " + run.encode())
    token = callers.hsadmin.access_token
    assert (await post(deployment, token, f"/quarantine/{local[0]}/{local[1]}")).status_code == 200
    assert (await post(deployment, token, "/purge/server/remote.example")).status_code == 403
    assert (await post(deployment, token, f"/purge/{remote.origin}/{remote.media_id}")).status_code == 403
    purge = await post(deployment, token, "/purge/quarantined")
    assert purge.status_code == 200
    assert f"mxc://{local[0]}/{local[1]}" in purge.json()["affected"]
    assert await record_of(rt, remote.origin, remote.media_id) is not None, "not theirs to purge"

    in_room = await deployment.upload(callers.alice.access_token, b"room " + run.encode())
    other = await add_remote(rt, "remote.example", f"o{run}", b"o" + run.encode(), age_days=0)
    room = room_with_media(synapse_homeserver, callers.hsadmin,
                           [f"mxc://{in_room[0]}/{in_room[1]}", f"mxc://{other.origin}/{other.media_id}"])
    purge = await post(deployment, token, f"/purge/room/{room}")
    assert purge.status_code == 200, purge.text
    assert purge.json()["affected"] == [f"mxc://{in_room[0]}/{in_room[1]}"]
    assert await record_of(rt, other.origin, other.media_id) is not None


async def test_a_room_purge_takes_before_ts(
    deployment: Deployment, runtime_for: Any, synapse_homeserver: SynapseServer, callers: Callers
) -> None:
    rt: Runtime = await runtime_for(deployment.config)
    run = str(time.time_ns()).encode()
    old = await deployment.upload(callers.alice.access_token, b"old " + run)
    new = await deployment.upload(callers.alice.access_token, b"new " + run)
    async with rt.sessions() as session:
        await session.execute(update(MediaRow).where(MediaRow.media_id == old[1])
                              .values(creation_ts=int(time.time() * 1000) - 2 * DAY_MS))
        await session.commit()
    room = room_with_media(synapse_homeserver, callers.hsadmin, [f"mxc://{s}/{m}" for s, m in (old, new)])
    purge = await post(deployment, callers.hsadmin.access_token, f"/purge/room/{room}",
                       params={"before_ts": int(time.time() * 1000) - DAY_MS})
    assert purge.status_code == 200, purge.text
    assert purge.json()["affected"] == [f"mxc://{old[0]}/{old[1]}"]
    assert await record_of(rt, *new) is not None, "stored after before_ts"
