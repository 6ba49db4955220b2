"""A browser-like client of the console for the tests: cookies kept, forms posted with their
CSRF token and the console's own Origin, as a browser posting the console's forms would."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from shared.config import MmrConfig
from shared.db.engine import create_engine, create_sessionmaker
from shared.db.repositories.media import MediaRecord, insert_media
from tests.conftest import SERVER_NAME
from tests.services.admin.conftest import Deployment

CONSOLE = "/_matrix/media/unstable/admin/console"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class Console:
    def __init__(self, deployment: Deployment, **kw: Any) -> None:
        self.http = httpx.AsyncClient(base_url=deployment.admin_url, timeout=60,
                                      headers={"Host": SERVER_NAME}, **kw)
        self.origin = f"http://{SERVER_NAME}"

    async def __aenter__(self) -> Console:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.http.get(CONSOLE + path, **kw)

    async def post_form(self, path: str, data: dict[str, str], csrf: str | None,
                        origin: str | None = "same") -> httpx.Response:
        headers = {} if origin is None else {"Origin": self.origin if origin == "same" else origin}
        body = dict(data, **({"csrf": csrf} if csrf is not None else {}))
        return await self.http.post(CONSOLE + path, data=body, headers=headers)

    async def sign_in(self, token: str) -> httpx.Response:
        page = await self.get("/signin")
        return await self.post_form("/signin", {"token": token}, csrf_of(page.text))

    async def csrf(self) -> str:
        """The session's CSRF token, as every signed-in page carries it (sign-out form)."""
        return csrf_of((await self.get("/media")).text)

    async def confirm_and_post(self, confirm_path: str) -> httpx.Response:
        """Open a confirmation page and press its button."""
        page = await self.get(confirm_path)
        assert page.status_code == 200, page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action, page.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        csrf = fields.pop("csrf")
        return await self.post_form(action.group(1)[len(CONSOLE):], fields, csrf)


async def insert_record(config: MmrConfig, **fields: Any) -> MediaRecord:
    """A media row written straight to the database (for values no homeserver would issue)."""
    values: dict[str, Any] = {
        "origin": SERVER_NAME, "media_id": f"console{time.time_ns()}", "upload_name": "a.txt",
        "content_type": "text/plain", "user_id": "@someone:localhost", "sha256": "0" * 64,
        "size_bytes": 5, "creation_ts": int(time.time() * 1000), "datastore_id": "local",
        "location": "00/00/none", **fields,
    }
    record = MediaRecord(**values)
    engine = create_engine(config.database, "console-test")
    try:
        async with create_sessionmaker(engine)() as session:
            await insert_media(session, record)
            await session.commit()
    finally:
        await engine.dispose()
    return record
