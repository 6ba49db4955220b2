"""`datastores`, `size_estimate` and `transfer_to`: a file datastore's objects move to SeaweedFS
while clients download them, and not one download fails."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.config import MmrConfig
from shared.db.archive_models import DatastoreMoveRow
from shared.db.models import MediaRow, ThumbnailRow
from shared.db.repositories.thumbnails import ThumbnailKey, ThumbnailRecord, insert_thumbnail
from shared.media import transfer
from shared.storage.keys import content_key
from tests.conftest import RunningMmr, new_bucket
from tests.infra.seaweedfs import S3Server
from tests.services.archives.helpers import ADMIN, USER_TOKEN, Nodes, upload, wait_task

OBJECTS = 30


def two_datastores(nodes: Nodes, s3: S3Server, bucket: str) -> MmrConfig:
    """Everything written to the file datastore `local`; `s3` only reachable by id (a target)."""
    config = nodes.config()
    raw = config.model_dump(by_alias=True, exclude_none=True)
    local = next(d for d in raw["datastores"] if d["type"] == "file") if any(
        d["type"] == "file" for d in raw["datastores"]) else None
    files = local or {"id": "local", "type": "file", "forKinds": ["all"],
                      "opts": {"path": str(nodes.tmp_path / f"node{nodes.count}" / "media")}}
    raw["datastores"] = [
        {**files, "id": "local", "forKinds": ["all"]},
        {"id": "s3", "type": "s3", "forKinds": [], "opts": {
            "endpoint": s3.endpoint, "bucketName": bucket, "accessKeyId": s3.access_key,
            "accessSecret": s3.secret_key, "region": s3.region, "ssl": False, "pathStyle": True}},
    ]
    return MmrConfig.model_validate(raw)


async def add_thumbnail(rt: Any, origin: str, media_id: str, data: bytes, tmp_path: Path) -> str:
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"thumb-{sha[:8]}"
    path.write_bytes(data)
    stored = await rt.datastores.get("local").put_file(content_key(sha), path, "image/png")
    async with rt.sessions() as session:
        await insert_thumbnail(session, ThumbnailRecord(
            key=ThumbnailKey(origin, media_id, 32, 32, "crop", False), content_type="image/png",
            sha256=sha, size_bytes=len(data), creation_ts=int(time.time() * 1000) - 1000,
            datastore_id="local", location=stored.location))
    return sha


async def download_loop(node: RunningMmr, media: dict[str, bytes], stop: asyncio.Event,
                        failures: list[str], count: list[int]) -> None:
    ids = list(media)
    async with node.client() as client:
        while not stop.is_set():
            media_id = random.choice(ids)
            try:
                answer = await client.get(f"/_matrix/client/v1/media/download/localhost/{media_id}")
                if answer.status_code != 200 or answer.content != media[media_id]:
                    failures.append(f"{media_id}: {answer.status_code} {answer.text[:100]}")
            except Exception as exc:
                failures.append(f"{media_id}: {exc!r}")
            count[0] += 1


async def test_a_transfer_to_seaweedfs_under_downloads_fails_no_download(
    nodes: Nodes, s3_server: S3Server, runtime_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Downloads open their stream within milliseconds of reading the row; a second is plenty here.
    monkeypatch.setattr(transfer, "DELETE_GRACE_SECONDS", 1.0)
    config = two_datastores(nodes, s3_server, new_bucket(s3_server))
    node = nodes.serve(config)
    media: dict[str, bytes] = {}
    for n in range(OBJECTS):
        data = hashlib.sha256(f"object {n}".encode()).digest() * random.randint(50, 600)
        media[await upload(node, data, "application/octet-stream", f"o{n}.bin")] = data
    twin = next(iter(media.values()))
    media[await upload(node, twin, "application/octet-stream", "twin.bin")] = twin  # deduplicated
    rt = await runtime_for(config)
    thumb_sha = await add_thumbnail(rt, "localhost", next(iter(media)), b"thumbnail bytes", tmp_path)

    async with node.client() as admin:
        listed = (await admin.get(f"{ADMIN}/datastores")).json()
        assert listed["local"]["type"] == "file" and listed["s3"]["type"] == "s3"
        assert listed["s3"]["uri"].startswith("s3://") and listed["s3"]["uri"].endswith(config.datastores[1]
                                                                                        .opts["bucketName"])
        estimate = (await admin.get(f"{ADMIN}/datastores/local/size_estimate")).json()
        assert estimate["media_affected"] == OBJECTS + 1
        assert estimate["media_hashes_affected"] == OBJECTS
        assert estimate["media_bytes"] == sum(len(d) for d in set(media.values()))
        assert (estimate["thumbnails_affected"], estimate["thumbnail_hashes_affected"]) == (1, 1)
        assert estimate["total_hashes_affected"] == OBJECTS + 1
        assert estimate["total_bytes"] == estimate["media_bytes"] + len(b"thumbnail bytes")

        stop, failures, count = asyncio.Event(), list[str](), [0]
        loops = [asyncio.create_task(download_loop(node, media, stop, failures, count)) for _ in range(3)]
        await asyncio.sleep(0.3)
        started = await admin.post(f"{ADMIN}/datastores/local/transfer_to/s3")
        assert started.status_code == 200, started.text
        assert started.json()["total_bytes"] == estimate["total_bytes"]
        task = await wait_task(admin, started.json()["task_id"], timeout=120)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*loops)
        after = (await admin.get(f"{ADMIN}/datastores/local/size_estimate")).json()

    assert failures == [], failures[:5]
    assert count[0] > OBJECTS, "downloads ran throughout the transfer"
    assert task["error_message"] == "" and task["result"]["moved"] == OBJECTS + 1, task
    assert (task["done"], task["total"]) == (OBJECTS + 1, OBJECTS + 1)
    assert after["total_hashes_affected"] == 0
    async with rt.sessions() as session:
        places = set((await session.execute(select(MediaRow.datastore_id).distinct())).scalars())
        thumbs = set((await session.execute(select(ThumbnailRow.datastore_id).distinct())).scalars())
        journal = (await session.execute(select(func.count()).select_from(DatastoreMoveRow))).scalar()
    assert places == {"s3"} and thumbs == {"s3"} and journal == 0
    root = Path(config.datastores[0].opts["path"])
    assert [p for p in root.rglob("*") if p.is_file()] == []
    assert await rt.datastores.get("s3").exists(content_key(thumb_sha))


async def test_transfer_requests_that_cannot_run_are_refused(nodes: Nodes) -> None:
    node = nodes.serve(nodes.config())
    only = node.config.datastores[0].id
    async with node.client() as admin, node.client(token=USER_TOKEN) as user:
        same = await admin.post(f"{ADMIN}/datastores/{only}/transfer_to/{only}")
        assert same.status_code == 400 and "cannot be the same" in same.json()["error"]
        unknown = await admin.post(f"{ADMIN}/datastores/{only}/transfer_to/nowhere")
        assert unknown.status_code == 400 and "Target datastore" in unknown.json()["error"]
        bad_ts = await admin.get(f"{ADMIN}/datastores/{only}/size_estimate", params={"before_ts": "soon"})
        assert bad_ts.status_code == 400
        assert (await admin.get(f"{ADMIN}/datastores/nowhere/size_estimate")).status_code == 404
        for method, path in (("GET", "datastores"), ("GET", f"datastores/{only}/size_estimate"),
                             ("POST", f"datastores/{only}/transfer_to/x")):
            refused = await user.request(method, f"{ADMIN}/{path}")
            assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN"), path
