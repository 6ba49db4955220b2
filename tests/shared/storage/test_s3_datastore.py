"""S3-datastore specifics: object metadata, prefixes, public URLs, readiness."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from shared.storage.base import DatastoreUnavailable
from shared.storage.keys import content_key
from shared.storage.s3 import S3Datastore, _endpoint_url
from tests.infra.seaweedfs import S3Server
from tests.shared.storage.helpers import PUBLIC_BASE_URL, make_s3_datastore, remove_bucket

KEY = content_key("cd" * 32)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path


async def test_object_metadata(s3_datastore: S3Datastore, s3_server: S3Server, tmp_path: Path) -> None:
    await s3_datastore.put_file(KEY, write(tmp_path, b"<svg/>"), "image/svg+xml")
    head = await asyncio.to_thread(s3_server.client().head_object, Bucket=s3_datastore.bucket, Key=KEY)
    assert head["ContentType"] == "image/svg+xml"
    assert head["ContentLength"] == 6


async def test_public_url(s3_datastore: S3Datastore) -> None:
    assert s3_datastore.public_url(KEY) == PUBLIC_BASE_URL.rstrip("/") + "/" + KEY


async def test_prefix(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = f"mmr-test-{uuid.uuid4().hex[:16]}"
    store = make_s3_datastore(s3_server, bucket, prefix="/media/", public_base_url="https://cdn/")
    await store.ensure_bucket()
    try:
        stored = await store.put_file(KEY, write(tmp_path, b"data"), "text/plain")
        assert stored.location == KEY
        assert await store.size(KEY) == 4
        listing = await asyncio.to_thread(s3_server.client().list_objects_v2, Bucket=bucket)
        assert [item["Key"] for item in listing["Contents"]] == [f"media/{KEY}"]
        assert store.public_url(KEY) == f"https://cdn/media/{KEY}"
    finally:
        await store.close()
        await asyncio.to_thread(remove_bucket, s3_server, bucket)


async def test_no_public_url_without_base(s3_server: S3Server) -> None:
    store = make_s3_datastore(s3_server, "unused-bucket")
    assert store.public_url(KEY) is None
    await store.close()


async def test_check_ready_fails_for_a_missing_bucket(s3_server: S3Server) -> None:
    store = make_s3_datastore(s3_server, f"missing-{uuid.uuid4().hex[:16]}")
    with pytest.raises(DatastoreUnavailable, match="missing-"):
        await store.check_ready()
    await store.close()


async def test_check_ready_fails_with_bad_credentials(s3_datastore: S3Datastore, s3_server: S3Server) -> None:
    store = S3Datastore(
        id="bad",
        kinds=frozenset({"all"}),
        endpoint=s3_server.endpoint,
        bucket=s3_datastore.bucket,
        region=s3_server.region,
        access_key_id="wrong",
        access_secret="wrong",
        ssl=False,
        path_style=True,
        storage_class=None,
        public_base_url=None,
    )
    with pytest.raises(DatastoreUnavailable):
        await store.check_ready()
    await store.close()


async def test_ensure_bucket_is_idempotent(s3_datastore: S3Datastore) -> None:
    await s3_datastore.ensure_bucket()
    await s3_datastore.check_ready()


def test_endpoint_url() -> None:
    assert _endpoint_url("s3.example.org", ssl=True) == "https://s3.example.org"
    assert _endpoint_url("localhost:9000", ssl=False) == "http://localhost:9000"
    assert _endpoint_url("http://localhost:9000", ssl=True) == "http://localhost:9000"


@pytest.mark.parametrize(("multipart", "parts"), [(True, 2), (False, 0)])
async def test_multipart_uploads_can_be_switched_off(
    s3_server: S3Server, tmp_path: Path, multipart: bool, parts: int
) -> None:
    """`multipartUploads: false` sends one PUT (an ETag without a part count) even for big files."""
    bucket = f"mmr-test-{uuid.uuid4().hex[:16]}"
    store = make_s3_datastore(s3_server, bucket, multipart=multipart)
    await store.ensure_bucket()
    try:
        await store.put_file(KEY, write(tmp_path, b"m" * (20 * 1024 * 1024)), "application/octet-stream")
        head = await asyncio.to_thread(s3_server.client().head_object, Bucket=bucket, Key=KEY)
        etag = head["ETag"].strip('"')
        assert (int(etag.split("-")[1]) if "-" in etag else 0) == parts
        assert head["ContentLength"] == 20 * 1024 * 1024
    finally:
        await store.close()
        await asyncio.to_thread(remove_bucket, s3_server, bucket)


def _unreachable(s3_server: S3Server) -> S3Datastore:
    from tests.infra.http_server import free_port

    return S3Datastore(id="gone", kinds=frozenset({"all"}), endpoint=f"127.0.0.1:{free_port()}",
                       bucket="any", region=s3_server.region, access_key_id="k",
                       access_secret="s", ssl=False, path_style=True, storage_class=None,
                       public_base_url=None)


async def _read(store: S3Datastore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.open_stream(key)])


async def test_read_from_an_unreachable_endpoint_is_unavailable(s3_server: S3Server) -> None:
    store = _unreachable(s3_server)
    with pytest.raises(DatastoreUnavailable, match="gone"):
        await _read(store, KEY)
    await store.close()


async def test_read_from_a_missing_bucket_is_unavailable(s3_server: S3Server) -> None:
    """A missing bucket is the operator's problem, not a missing object (no 404 to clients)."""
    store = make_s3_datastore(s3_server, f"missing-{uuid.uuid4().hex[:16]}")
    with pytest.raises(DatastoreUnavailable, match="NoSuchBucket"):
        await _read(store, KEY)
    await store.close()


async def test_reads_reuse_one_presigned_url(
    s3_datastore: S3Datastore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing costs more CPU than the rest of a read: it is done once per key, not per read."""
    await s3_datastore.put_file(KEY, write(tmp_path, b"payload"), "text/plain")
    signed: list[str] = []
    sign = s3_datastore.presigned_get_url

    def counting(key: str, expires_seconds: int) -> str:
        signed.append(key)
        return sign(key, expires_seconds)

    monkeypatch.setattr(s3_datastore, "presigned_get_url", counting)
    for _ in range(3):
        assert await _read(s3_datastore, KEY) == b"payload"
    assert len(signed) <= 1
