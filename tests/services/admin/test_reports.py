"""What operators read: usage (matrix-media-repo's and Synapse's user statistics with paging),
task status with progress, the audit log with paging, and the Synapse aliases' answers."""

from __future__ import annotations

from typing import Any

from tests.conftest import TEST_SECRET
from tests.services.admin.conftest import ADMIN_PREFIX, T2BOT_PREFIX, Callers, Deployment


async def get(deployment: Deployment, path: str, token: str = TEST_SECRET, **kw: Any) -> Any:
    async with deployment.client(token) as http:
        return await http.get(path, **kw)


async def test_usage_of_a_server_its_users_and_uploads(deployment: Deployment, callers: Callers) -> None:
    a = await deployment.upload(callers.alice.access_token, b"a" * 10, filename="a.bin")
    b1 = await deployment.upload(callers.bob.access_token, b"b" * 20)
    b2 = await deployment.upload(callers.bob.access_token, b"c" * 30)

    usage = (await get(deployment, ADMIN_PREFIX + "/usage/localhost")).json()
    assert usage["raw_bytes"] == {"total": 60, "media": 60, "thumbnails": 0}
    assert usage["raw_counts"] == {"total": 3, "media": 3, "thumbnails": 0}

    users = (await get(deployment, T2BOT_PREFIX + "/usage/localhost/users",
                       params={"user_id": callers.bob.user_id})).json()
    assert list(users) == [callers.bob.user_id]
    bob = users[callers.bob.user_id]
    assert bob["raw_bytes"] == {"total": 50, "media": 50}
    assert bob["raw_counts"] == {"total": 2, "media": 2}
    assert sorted(bob["uploaded"]) == sorted(f"mxc://{s}/{m}" for s, m in (b1, b2))

    uploads = (await get(deployment, ADMIN_PREFIX + "/usage/localhost/uploads",
                         params={"mxc": f"mxc://{a[0]}/{a[1]}"})).json()
    entry = uploads[f"mxc://{a[0]}/{a[1]}"]
    assert entry["size_bytes"] == 10 and entry["uploaded_by"] == callers.alice.user_id
    assert entry["upload_name"] == "a.bin" and entry["quarantined"] is False
    assert len(entry["sha256_hash"]) == 64 and entry["datastore_id"]
    wrong = await get(deployment, ADMIN_PREFIX + "/usage/localhost/uploads",
                      params={"mxc": "mxc://elsewhere.example/x"})
    assert wrong.status_code == 400


async def test_synapse_user_media_statistics_page_and_order(
    deployment: Deployment, callers: Callers
) -> None:
    for user, count in ((callers.alice, 1), (callers.bob, 2), (callers.operator, 3)):
        for n in range(count):
            await deployment.upload(user.access_token, b"x" * (n + 1) * 100)
    path = "/_synapse/admin/v1/statistics/users/media"
    first = (await get(deployment, path, params={"order_by": "media_count", "dir": "b", "limit": 2})).json()
    assert [u["user_id"] for u in first["users"]] == [callers.operator.user_id, callers.bob.user_id]
    assert first["users"][0]["media_count"] == 3 and first["users"][0]["media_length"] == 600
    assert first["total"] == 3 and first["next_token"] == 2
    rest = (await get(deployment, path, params={"order_by": "media_count", "dir": "b", "limit": 2,
                                                "from": first["next_token"]})).json()
    assert [u["user_id"] for u in rest["users"]] == [callers.alice.user_id]
    assert "next_token" not in rest
    search = (await get(deployment, ADMIN_PREFIX + "/usage/localhost/users-stats",
                        params={"search_term": "mmr_bob"})).json()
    assert [u["user_id"] for u in search["users"]] == [callers.bob.user_id]
    for bad in ({"order_by": "size"}, {"dir": "x"}, {"limit": "-1"}, {"from_ts": 5, "until_ts": 5}):
        assert (await get(deployment, path, params=bad)).status_code == 400, bad


async def test_tasks_show_progress_result_and_errors(deployment: Deployment, callers: Callers) -> None:
    media = await deployment.upload(callers.alice.access_token, b"purge me")
    async with deployment.client() as http:
        purge = await http.post(ADMIN_PREFIX + "/purge/server/localhost",
                                params={"before_ts": 2 ** 41})
    task_id = purge.json()["task_id"]
    status = (await get(deployment, f"{ADMIN_PREFIX}/tasks/{task_id}")).json()
    assert status["task_name"] == "purge_media" and status["is_finished"] is True
    assert status["end_ts"] >= status["start_ts"] > 0
    assert status["error_message"] == ""
    assert (status["done"], status["total"]) == (1, 1)
    assert status["result"]["affected"] == [f"mxc://{media[0]}/{media[1]}"]
    assert status["params"]["selector"]["origins"] == ["localhost"]
    everything = (await get(deployment, ADMIN_PREFIX + "/tasks/all")).json()
    assert task_id in [t["task_id"] for t in everything]
    unfinished = (await get(deployment, ADMIN_PREFIX + "/tasks/unfinished")).json()
    assert task_id not in [t["task_id"] for t in unfinished]
    assert (await get(deployment, ADMIN_PREFIX + "/tasks/nope")).status_code == 400
    assert (await get(deployment, ADMIN_PREFIX + "/tasks/99999")).status_code == 404


async def test_the_audit_log_records_mutating_calls_newest_first_in_pages(
    deployment: Deployment, callers: Callers
) -> None:
    media = await deployment.upload(callers.alice.access_token, b"audited")
    async with deployment.client(callers.alice.access_token) as http:
        refused = await http.post(f"{ADMIN_PREFIX}/quarantine/{media[0]}/{media[1]}")
    assert refused.status_code == 403
    async with deployment.client(callers.operator.access_token) as http:
        done = await http.post(f"{T2BOT_PREFIX}/quarantine/{media[0]}/{media[1]}")
        await http.get(ADMIN_PREFIX + "/tasks/all")  # reads are not audited
    assert done.status_code == 200

    page = (await get(deployment, ADMIN_PREFIX + "/audit", params={"limit": 1})).json()
    (newest,) = page["entries"]
    assert newest["user_id"] == callers.operator.user_id
    assert newest["method"] == "POST" and newest["path"].endswith(f"/quarantine/{media[0]}/{media[1]}")
    assert newest["status"] == 200 and newest["outcome"] == "ok" and newest["ts"] > 0
    older = (await get(deployment, ADMIN_PREFIX + "/audit",
                       params={"limit": 1, "from": page["next_token"]})).json()
    (refused_entry,) = older["entries"]
    assert refused_entry["user_id"] == callers.alice.user_id
    assert refused_entry["outcome"] == "refused" and refused_entry["status"] == 403
    assert "M_FORBIDDEN" in refused_entry["detail"]


async def test_synapse_aliases_answer_in_synapses_shapes(deployment: Deployment, callers: Callers) -> None:
    media = await deployment.upload(callers.alice.access_token, b"synapse style")
    async with deployment.client() as http:
        quarantine = await http.post(f"/_synapse/admin/v1/media/quarantine/{media[0]}/{media[1]}")
        release = await http.post(f"/_synapse/admin/v1/media/unquarantine/{media[0]}/{media[1]}")
        user = await http.post(f"/_synapse/admin/v1/user/{callers.alice.user_id}/media/quarantine")
        cache = await http.post("/_synapse/admin/v1/purge_media_cache", params={"before_ts": 1})
        delete = await http.delete(f"/_synapse/admin/v1/media/{media[0]}/{media[1]}")
        mmr_cache = await http.post("/_matrix/client/unstable/admin/purge_media_cache",
                                    params={"before_ts": 1})
    assert quarantine.json() == {} and release.json() == {}
    assert user.json()["num_quarantined"] >= 1
    assert cache.json()["deleted"] == 0
    assert delete.json() == {"deleted_media": [media[1]], "total": 1}
    assert mmr_cache.json()["total_removed"] == 0
