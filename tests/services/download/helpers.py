"""Requests as clients send them, for the download tests."""

from __future__ import annotations

from email.message import Message

import httpx

from tests.services.upload.helpers import DOWNLOAD, LEGACY_DOWNLOAD, UPLOAD, unique_bytes

__all__ = [
    "DOWNLOAD", "FEDERATION_DOWNLOAD", "LEGACY_DOWNLOAD", "UPLOAD", "disposition_filename",
    "disposition_type", "unique_bytes", "upload",
]

FEDERATION_DOWNLOAD = "/_matrix/federation/v1/media/download"


async def upload(
    client: httpx.AsyncClient, data: bytes, content_type: str | None = "application/octet-stream",
    filename: str | None = None,
) -> str:
    """Upload through mmr's own API; returns `<server>/<media id>` (the mxc without scheme)."""
    headers = {"Content-Type": content_type} if content_type is not None else {}
    params = {"filename": filename} if filename is not None else {}
    response = await client.post(UPLOAD, content=data, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return str(response.json()["content_uri"]).removeprefix("mxc://")


def disposition_filename(header: str) -> str | None:
    """The filename a standards-following client reads from Content-Disposition."""
    message = Message()
    message["content-disposition"] = header
    return message.get_filename()


def disposition_type(header: str) -> str:
    return header.split(";", 1)[0].strip()
