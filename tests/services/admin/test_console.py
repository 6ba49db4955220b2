"""The operator console over HTTP, in the embedded default and on a cluster's admin node:
signing in and out, who is refused, the security headers, escaping, each page, and the media
buttons going through the admin API's functions into the audit log."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.services.admin.conftest import ADMIN_PREFIX, Callers, Deployment
from tests.services.admin.console_client import CONSOLE, Console, csrf_of, insert_record

PAGES = ("/cluster", "/tasks", "/usage", "/media")
HOSTILE_NAME = "<img src=x onerror=alert(1)>"


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert found, response.headers
    return found[0]


async def test_signing_in_sets_a_strict_http_only_cookie_and_signing_out_ends_it(
    deployment: Deployment,
) -> None:
    async with Console(deployment) as console:
        first = await console.get("/")
        assert first.status_code == 401 and 'name="token"' in first.text  # the sign-in page
        signed_in = await console.sign_in(TEST_SECRET)
        assert signed_in.status_code == 303, signed_in.text
        cookie = cookie_header(signed_in, "mmr_console").lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
        assert f"path={CONSOLE.lower()}/" in cookie
        assert TEST_SECRET not in signed_in.headers.get("location", "")
        session_id = console.http.cookies["mmr_console"]
        assert (await console.get("/cluster")).status_code == 200

        signed_out = await console.post_form("/signout", {}, await console.csrf())
        assert signed_out.status_code == 303
        assert (await console.get("/cluster")).status_code == 401
        console.http.cookies.set("mmr_console", session_id)  # the old cookie opens nothing
        again = await console.get("/cluster")
        assert again.status_code == 401 and 'name="token"' in again.text


async def test_the_cookie_is_secure_over_https_at_a_trusted_proxy_only(deploy: Any) -> None:
    deployment: Deployment = deploy("embedded", repo={"trustedProxies": ["127.0.0.1/32"]})
    async with Console(deployment) as console:
        page = await console.get("/signin", headers={"X-Forwarded-Proto": "https"})
        assert "secure" in cookie_header(page, "mmr_console_signin").lower()
        # The client is on plain HTTP behind the "proxy": it sends the Secure cookie by hand.
        signin_cookie = cookie_header(page, "mmr_console_signin").split(";")[0]
        signed_in = await console.http.post(
            CONSOLE + "/signin", data={"token": TEST_SECRET, "csrf": csrf_of(page.text)},
            headers={"X-Forwarded-Proto": "https", "Cookie": signin_cookie})
        assert signed_in.status_code == 303, signed_in.text
        assert "secure" in cookie_header(signed_in, "mmr_console").lower()
    plain: Deployment = deploy("embedded")
    async with Console(plain) as console:
        page = await console.get("/signin", headers={"X-Forwarded-Proto": "https"})
        assert "secure" not in cookie_header(page, "mmr_console_signin").lower()


async def test_refused_callers(deployment: Deployment, callers: Callers) -> None:
    async with Console(deployment) as console:
        for path in PAGES:
            page = await console.get(path)
            assert page.status_code == 401 and 'name="token"' in page.text, path
        not_admin = await console.sign_in(callers.alice.access_token)
        assert not_admin.status_code == 403 and "not an administrator" in not_admin.text
        assert "mmr_console" not in console.http.cookies
        unknown = await console.sign_in("not-a-token")
        assert unknown.status_code == 401
        page = await console.get("/signin")
        forged = await console.post_form("/signin", {"token": TEST_SECRET}, "forged")
        assert forged.status_code == 403 and "mmr_console" not in console.http.cookies
        other_site = await console.post_form("/signin", {"token": TEST_SECRET}, csrf_of(page.text),
                                             origin="https://evil.example")
        assert other_site.status_code == 403

    server, media_id = await deployment.upload(callers.alice.access_token, b"keep me")
    async with Console(deployment) as console:
        assert (await console.sign_in(TEST_SECRET)).status_code == 303
        for csrf in (None, "forged"):
            refused = await console.post_form(f"/media/quarantine/{server}/{media_id}", {}, csrf)
            assert refused.status_code == 403, refused.text
        cross_site = await console.post_form(f"/media/quarantine/{server}/{media_id}", {},
                                             await console.csrf(), origin="https://evil.example")
        assert cross_site.status_code == 403
        found = await console.get("/media", params={"q": f"mxc://{server}/{media_id}"})
        assert '<dd class="state">no</dd>' in found.text  # still not quarantined


async def test_a_local_admin_sees_only_their_homeserver(deployment: Deployment, callers: Callers) -> None:
    async with Console(deployment) as console:
        assert (await console.sign_in(callers.hsadmin.access_token)).status_code == 303
        assert (await console.get("/cluster")).status_code == 403
        assert (await console.get("/tasks")).status_code == 403
        assert (await console.get("/usage")).status_code == 200
        assert (await console.get("/usage", params={"server": "elsewhere.example"})).status_code == 403
        remote = await console.get("/media", params={"q": "mxc://elsewhere.example/abc"})
        assert "your own homeserver" in remote.text


async def test_every_page_has_a_strict_csp_and_cannot_be_framed(deployment: Deployment) -> None:
    async with Console(deployment) as console:
        pages = [await console.get("/signin")]
        await console.sign_in(TEST_SECRET)
        pages += [await console.get(path) for path in PAGES]
        for page in pages:
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
            assert page.headers["x-frame-options"] == "DENY"
            assert "<script>" not in page.text and " onclick=" not in page.text


async def test_hostile_filenames_and_user_ids_show_as_text(deployment: Deployment) -> None:
    hostile_user = "@<script>alert(1)</script>:localhost"
    record = await insert_record(deployment.config, upload_name=HOSTILE_NAME, user_id=hostile_user)
    server, media_id = await deployment.upload(TEST_SECRET, b"named", filename=HOSTILE_NAME)
    async with Console(deployment) as console:
        await console.sign_in(TEST_SECRET)
        pages = [
            await console.get("/media", params={"q": f"mxc://{server}/{media_id}"}),
            await console.get("/media", params={"q": record.mxc}),
            await console.get("/media", params={"q": hostile_user}),
            await console.get("/media", params={"q": HOSTILE_NAME}),
            await console.get("/usage"),
        ]
        for page in pages:
            assert page.status_code == 200
            assert HOSTILE_NAME not in page.text and "<script>alert" not in page.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in pages[0].text
        assert "@&lt;script&gt;alert(1)&lt;/script&gt;:localhost" in pages[4].text
        chart = await console.get("/usage/charts/users.svg")
        assert chart.status_code == 200 and "<script>alert" not in chart.text
        assert "&lt;script&gt;" in chart.text


async def test_each_page_renders(deployment: Deployment, callers: Callers) -> None:
    server, media_id = await deployment.upload(callers.alice.access_token, b"x" * 1000,
                                               filename="notes.txt")
    async with Console(deployment) as console:
        await console.sign_in(TEST_SECRET)
        cluster = await console.get("/cluster")
        assert cluster.status_code == 200
        expected = "embedded" if deployment.kind == "embedded" else "admin"
        assert f"<td>{expected}</td>" in cluster.text and 'data-refresh="5"' in cluster.text
        tasks = await console.get("/tasks")
        assert tasks.status_code == 200 and "Purge remote media" in tasks.text
        usage = await console.get("/usage")
        assert usage.status_code == 200 and callers.alice.user_id in usage.text
        for chart in ("storage", "uploads", "users", "datastores"):
            svg = await console.get(f"/usage/charts/{chart}.svg")
            assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
            assert "<script" not in svg.text
        media = await console.get("/media", params={"q": f"mxc://{server}/{media_id}"})
        assert media.status_code == 200 and "notes.txt" in media.text and "1000 bytes" in media.text
        user = await console.get("/media", params={"q": callers.alice.user_id})
        assert f"mxc://{server}/{media_id}" in user.text and "file(s)" in user.text
        for name in ("console.css", "console.js"):
            assert (await console.get(f"/static/{name}")).status_code == 200
        # An encoded "/" never reaches the static files: the raw-path guard refuses it first.
        assert (await console.get("/static/..%2Fpages.py")).status_code in (400, 404)


async def audit_entries(deployment: Deployment) -> list[dict[str, Any]]:
    async with deployment.client(TEST_SECRET) as http:
        response = await http.get(f"{ADMIN_PREFIX}/audit", params={"limit": 50})
    assert response.status_code == 200
    return list(response.json()["entries"])


async def download_status(deployment: Deployment, token: str, server: str, media_id: str) -> int:
    async with deployment.client(token, media=True) as http:
        response = await http.get(f"/_matrix/client/v1/media/download/{server}/{media_id}")
    return response.status_code


async def test_quarantine_pin_and_purge_through_the_console_are_audited(
    deployment: Deployment, callers: Callers,
) -> None:
    server, media_id = await deployment.upload(callers.alice.access_token, b"evidence")
    token = callers.alice.access_token
    assert await download_status(deployment, token, server, media_id) == 200
    async with Console(deployment) as console:
        await console.sign_in(callers.operator.access_token)
        done = await console.confirm_and_post(f"/media/confirm/quarantine/{server}/{media_id}")
        assert done.status_code == 303, done.text
        assert await download_status(deployment, token, server, media_id) == 404
        assert (await console.confirm_and_post(
            f"/media/confirm/pin/{server}/{media_id}")).status_code == 303
        page = await console.get("/media", params={"q": f"mxc://{server}/{media_id}"})
        assert page.text.count('<dd class="state">yes</dd>') == 2  # quarantined and pinned
        refused = await console.confirm_and_post(f"/media/confirm/purge/{server}/{media_id}")
        assert refused.status_code == 403 and "Pinned media is never purged" in refused.text
        await console.confirm_and_post(f"/media/confirm/unpin/{server}/{media_id}")
        purged = await console.confirm_and_post(f"/media/confirm/purge/{server}/{media_id}")
        assert purged.status_code == 303
        gone = await console.get("/media", params={"q": f"mxc://{server}/{media_id}"})
        assert "is not known here" in gone.text
    entries = await audit_entries(deployment)
    mine = [(e["path"].rsplit("/", 3)[-3], e["outcome"]) for e in entries
            if e["path"].startswith(CONSOLE + "/media/") and e["path"].endswith(media_id)]
    assert mine[::-1] == [("quarantine", "ok"), ("pin", "ok"), ("purge", "refused"),
                          ("unpin", "ok"), ("purge", "ok")]
    assert {e["user_id"] for e in entries if e["path"].endswith(media_id)} == {callers.operator.user_id}


async def test_a_remote_purge_started_from_the_tasks_page_runs_to_the_end(
    deployment: Deployment,
) -> None:
    async with Console(deployment) as console:
        await console.sign_in(TEST_SECRET)
        confirm = await console.get("/tasks/confirm/purge-remote", params={"before": "2020-01-01"})
        assert "0 item(s)" in confirm.text
        started = await console.confirm_and_post("/tasks/confirm/purge-remote?before=2020-01-01")
        assert started.status_code == 303
        task_id = started.headers["location"].rsplit("=", 1)[1]
        for _ in range(100):
            page = await console.get("/tasks")
            row = page.text.split(f'data-task="{task_id}"', 1)[1].split("</tr>", 1)[0]
            if "finished" in row:
                break
            await asyncio.sleep(0.1)
        assert 'value="100"' in row and "purge_media" in row


@pytest.mark.parametrize("bad", ["2020-13-01", "yesterday"])
async def test_a_bad_date_is_a_page_not_a_task(deploy: Any, bad: str) -> None:
    async with Console(deploy("embedded")) as console:
        await console.sign_in(TEST_SECRET)
        page = await console.get("/tasks/confirm/purge-remote", params={"before": bad})
        assert page.status_code == 400 and "not a date" in page.text


async def test_a_datastore_transfer_is_confirmed_then_started(deploy: Any, tmp_path: Any) -> None:
    stores = [{"id": "local", "type": "file", "forKinds": ["all"], "opts": {"path": str(tmp_path / "a")}},
              {"id": "archive", "type": "file", "forKinds": [], "opts": {"path": str(tmp_path / "b")}}]
    deployment: Deployment = deploy("embedded", datastores=stores)
    await deployment.upload(TEST_SECRET, b"to be moved")
    async with Console(deployment) as console:
        await console.sign_in(TEST_SECRET)
        query = "?source=local&target=archive&before=2100-01-01"
        confirm = await console.get("/tasks/confirm/transfer" + query)
        assert confirm.status_code == 200 and "1 object(s), 11 bytes" in confirm.text
        started = await console.confirm_and_post("/tasks/confirm/transfer" + query)
        assert started.status_code == 303, started.text
        task_id = started.headers["location"].rsplit("=", 1)[1]
        tasks = await console.get("/tasks")
        row = tasks.text.split(f'data-task="{task_id}"', 1)[1].split("</tr>", 1)[0]
        assert "storage_migration" in row
        same = await console.get("/tasks/confirm/transfer?source=local&target=nowhere&before=2100-01-01")
        assert same.status_code == 200  # the estimate needs only the source ...
        refused = await console.confirm_and_post(
            "/tasks/confirm/transfer?source=local&target=nowhere&before=2100-01-01")
        assert refused.status_code == 400 and "Target datastore" in refused.text  # ... the start both
