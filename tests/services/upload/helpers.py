"""Helpers for the upload tests: requests as a client sends them, and looks at stored state."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from sqlalchemy import func, select

from shared.config import MmrConfig
from shared.db.models import MediaRow
from shared.runtime import Runtime

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
DOWNLOAD = "/_matrix/client/v1/media/download"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download"
DEAD_REDIS = "redis://127.0.0.1:1/0"
"""Nothing listens on port 1: every Redis call fails with connection refused."""


def unique_bytes(size: int = 64) -> bytes:
    """Content no other test (or concurrent test run) uploads, so dedupe never crosses tests."""
    seed = uuid.uuid4().bytes
    return (seed * (size // len(seed) + 1))[:size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def media_path(mxc: str) -> str:
    return mxc.removeprefix("mxc://")


async def upload(
    client: httpx.AsyncClient, data: bytes, content_type: str = "application/octet-stream",
    **kwargs: Any,
) -> httpx.Response:
    headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
    return await client.post(UPLOAD, content=data, headers=headers, **kwargs)


async def create(client: httpx.AsyncClient, **kwargs: Any) -> httpx.Response:
    return await client.post(CREATE, **kwargs)


async def put(
    client: httpx.AsyncClient, mxc: str, data: bytes, content_type: str = "application/octet-stream",
    **kwargs: Any,
) -> httpx.Response:
    headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
    return await client.put(f"{UPLOAD}/{media_path(mxc)}", content=data, headers=headers, **kwargs)


def assert_error(response: httpx.Response, status: int, errcode: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["errcode"] == errcode, body
    assert body["error"]
    return body


async def rows_with_hash(runtime: Runtime, digest: str) -> list[MediaRow]:
    async with runtime.sessions() as session:
        result = await session.execute(select(MediaRow).where(MediaRow.sha256 == digest))
        return list(result.scalars())


async def rows_of_user(runtime: Runtime, user_id: str) -> int:
    async with runtime.sessions() as session:
        stmt = select(func.count()).select_from(MediaRow).where(MediaRow.user_id == user_id)
        return int((await session.execute(stmt)).scalar_one())


def temp_files(config: MmrConfig) -> list[Path]:
    temp = Path(config.repo.temp_path or "")
    return [p for p in temp.iterdir()] if temp.is_dir() else []



def stored_objects(config: MmrConfig) -> set[str]:
    """Every object key in the config's (single) datastore, read directly from the storage."""
    store = config.datastores[0]
    if store.type == "file":
        root = Path(store.file_opts().path)
        return {
            str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        } if root.exists() else set()
    opts = store.s3_opts()
    endpoint = opts.endpoint if "://" in opts.endpoint else f"http://{opts.endpoint}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=opts.access_key_id,
        aws_secret_access_key=opts.access_secret, region_name=opts.region or "us-east-1",
    )
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=opts.bucket_name):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


async def slow_body(data: bytes, chunk: int = 64 * 1024, pause: float = 0.01) -> AsyncIterator[bytes]:
    """A request body that trickles in, so that concurrent requests really overlap."""
    for start in range(0, len(data), chunk):
        await asyncio.sleep(pause)
        yield data[start:start + chunk]


@dataclass(frozen=True)
class PutRace:
    mxc: str
    winner: bytes
    loser: bytes


async def race_two_puts(first: httpx.AsyncClient, second: httpx.AsyncClient, size: int) -> PutRace:
    """Create an ID through `first`, then PUT different bodies to it through both at once.

    Asserts the spec's outcome: exactly one 200, the other 409 `M_CANNOT_OVERWRITE_MEDIA`.
    """
    mxc = (await create(first)).json()["content_uri"]
    bodies = [unique_bytes(size), unique_bytes(size)]
    answers = await asyncio.gather(*(
        client.put(f"{UPLOAD}/{media_path(mxc)}", content=slow_body(body))
        for client, body in zip((first, second), bodies, strict=True)
    ))
    statuses = [answer.status_code for answer in answers]
    assert sorted(statuses) == [200, 409], [answer.text for answer in answers]
    assert_error(answers[statuses.index(409)], 409, "M_CANNOT_OVERWRITE_MEDIA")
    return PutRace(mxc, bodies[statuses.index(200)], bodies[statuses.index(409)])


async def download_woken_by_put(
    waiter: httpx.AsyncClient, uploader: httpx.AsyncClient, wait_limit: float
) -> None:
    """Create an ID, start a download of it, PUT its content while the download waits: the
    download must answer the content within `wait_limit` seconds of the PUT."""
    mxc = (await create(uploader)).json()["content_uri"]
    data = unique_bytes(10_000)
    download = asyncio.create_task(
        waiter.get(f"{DOWNLOAD}/{media_path(mxc)}", params={"timeout_ms": 20000})
    )
    await asyncio.sleep(0.5)
    assert not download.done(), "the download should be waiting for the upload"
    response = await put(uploader, mxc, data)
    assert response.status_code == 200, response.text
    put_done = time.monotonic()
    got = await download
    assert got.status_code == 200, got.text
    assert got.content == data
    assert time.monotonic() - put_done < wait_limit
