"""Requests as clients send them, and looks at what was stored."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from shared.db.repositories.media import set_quarantined
from shared.db.repositories.thumbnails import ThumbnailRecord, list_thumbnails
from shared.runtime import Runtime
from tests.conftest import SERVER_NAME

UPLOAD = "/_matrix/media/v3/upload"
CLIENT = "/_matrix/client/v1/media/thumbnail"
LEGACY = "/_matrix/media/{version}/thumbnail"
FEDERATION = "/_matrix/federation/v1/media/thumbnail"


def unique_jpeg(width: int = 400, height: int = 300) -> bytes:
    """A JPEG no other test uploads (a comment makes the bytes, and so the hash, unique)."""
    from tests.services.thumbnail import media

    return media.encode(media.picture(width, height), "JPEG", quality=90,
                        comment=uuid.uuid4().hex.encode())


async def upload(client: httpx.AsyncClient, data: bytes, content_type: str) -> str:
    """Upload and return the media ID."""
    response = await client.post(UPLOAD, content=data, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    mxc: str = response.json()["content_uri"]
    return mxc.rsplit("/", 1)[1]


async def thumbnail(
    client: httpx.AsyncClient, media_id: str, width: int = 96, height: int = 96,
    method: str | None = "crop", path: str = CLIENT, **params: Any,
) -> httpx.Response:
    query: dict[str, Any] = {"width": width, "height": height, **params}
    if method is not None:
        query["method"] = method
    return await client.get(f"{path}/{SERVER_NAME}/{media_id}", params=query)


async def quarantine(rt: Runtime, media_id: str) -> None:
    async with rt.sessions() as session:
        await set_quarantined(session, SERVER_NAME, media_id, True)
        await session.commit()


async def stored_thumbnails(rt: Runtime, media_id: str) -> list[ThumbnailRecord]:
    async with rt.sessions() as session:
        return await list_thumbnails(session, SERVER_NAME, media_id)


async def wait_for_thumbnails(rt: Runtime, media_id: str, count: int,
                              timeout: float = 30.0) -> list[ThumbnailRecord]:
    deadline = time.monotonic() + timeout
    while True:
        found = await stored_thumbnails(rt, media_id)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)
