"""A datastore backed by an S3-compatible object store (AWS, MinIO, SeaweedFS, R2, …).

boto3 is blocking, so every call runs in a worker thread. boto3 clients (unlike sessions) are
thread-safe, so one client is shared by all of them. Reads, the hot path, skip boto: the object
is streamed from a presigned GET URL (signed locally and reused) by aiohttp,
on the event loop with no thread hop per chunk (httpx cost twice boto's CPU per read here;
aiohttp, with its C parser, a third of boto's).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.storage.base import (
    ByteRange,
    DatastoreUnavailable,
    ListedObject,
    ObjectNotFound,
    RangeNotSatisfiable,
    StoredObject,
)
from shared.storage.keys import is_content_key, validate_key

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET_CODES = frozenset({"404", "NoSuchBucket", "NotFound"})

MULTIPART_CHUNK_BYTES = 16 * 1024 * 1024
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=MULTIPART_CHUNK_BYTES,
    multipart_chunksize=MULTIPART_CHUNK_BYTES,
    max_concurrency=4,
)
"""Uploads above 16 MiB go multipart, four parts in flight. Parts are read from the file as they
are sent, so memory stays bounded however big the file is."""
SMALL_PUT_BYTES = MULTIPART_CHUNK_BYTES
"""Files up to this size go in one `put_object` from the open file (streamed, not read whole)."""
SINGLE_PART_CONFIG = TransferConfig(multipart_threshold=5 * 1024**3, max_concurrency=1)
"""`multipartUploads: false`, for S3-compatible servers without multipart support: one PUT up to
S3's 5 GiB single-object limit."""


PRESIGNED_MAX_ENTRIES = 10_000
READ_URL_SECONDS = 3600
"""Lifetime of the presigned URLs reads go through (each reused for half of it)."""
ERROR_BODY_MAX_BYTES = 64 * 1024
READ_CONNECT_SECONDS = 10.0
READ_IDLE_SECONDS = 60.0
"""A read that gets no byte for this long is cut (S3 stalled): the client sees an error."""
_ERROR_CODE = re.compile(rb"<Code>([^<]*)</Code>")


class PresignedUrls:
    """Presigned GETs reused for the first half of their life: signing one costs boto more CPU
    than the rest of a download, and each is used within milliseconds."""

    def __init__(self, max_entries: int = PRESIGNED_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def get(self, store: S3Datastore, key: str, lifetime_seconds: int) -> str:
        found = self._entries.get((store.id, key))
        now = time.monotonic()
        if found is not None and found[0] > now:
            return found[1]
        url = store.presigned_get_url(key, lifetime_seconds)
        self._entries[(store.id, key)] = (now + lifetime_seconds / 2, url)
        self._entries.move_to_end((store.id, key))
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return url


def _client_config(path_style: bool) -> Config:
    """Timeouts so a dead endpoint fails a request instead of hanging it, plus retries.

    Checksums only "when_required": botocore >= 1.36 otherwise adds CRC trailers that several
    S3-compatible servers reject.
    """
    return Config(
        connect_timeout=10,
        read_timeout=60,
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
        signature_version="s3v4",
        s3={"addressing_style": "path" if path_style else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _endpoint_url(endpoint: str, ssl: bool) -> str:
    """MMR configs give a bare `host[:port]`; a full URL is accepted too."""
    if "://" in endpoint:
        return endpoint
    return f"{'https' if ssl else 'http'}://{endpoint}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Datastore:
    """Objects live at `<prefix>/<key>` in one bucket."""

    type = "s3"

    def __init__(
        self,
        id: str,
        kinds: frozenset[str],
        endpoint: str,
        bucket: str,
        region: str,
        access_key_id: str,
        access_secret: str,
        ssl: bool,
        path_style: bool,
        storage_class: str | None,
        public_base_url: str | None,
        prefix: str = "",
        multipart: bool = True,
    ) -> None:
        self.id = id
        self._transfer_config = TRANSFER_CONFIG if multipart else SINGLE_PART_CONFIG
        self.kinds = frozenset(kinds)
        self.bucket = bucket
        self.region = region
        self.storage_class = storage_class or None
        self.public_base_url = public_base_url or None
        self.prefix = prefix.strip("/")
        self.endpoint_url = _endpoint_url(endpoint, ssl)
        self.local_root: Path | None = None
        host = self.endpoint_url.split("://", 1)[-1].split("/", 1)[0]
        self.uri = f"s3://{host}/{bucket}"
        if self.prefix:
            validate_key(self.prefix)
        # Empty credentials mean "use boto's default chain" (env vars, instance profile, …).
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=_endpoint_url(endpoint, ssl),
            region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=access_secret or None,
            config=_client_config(path_style),
        )
        self._read_urls = PresignedUrls()
        # Connections belong to the event loop that opened them; a datastore outlives loops in
        # tests and CLI commands, so each loop gets its own pool.
        # Reads stream through aiohttp (no thread hop, little CPU per chunk); one session per
        # event loop, as tests run several loops in one process.
        self._aio: tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession] | None = None

    def _object_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put_file(
        self, key: str, path: Path, content_type: str, *, move: bool = False
    ) -> StoredObject:
        """Upload `path` (multipart when large); skipped when the key already exists. The file
        is always left in place (`move` changes nothing: the bytes have to be sent)."""
        object_key = self._object_key(key)
        size = await self._head_size(object_key)
        if size is None:
            await asyncio.to_thread(self._upload_sync, object_key, path, content_type)
            size = path.stat().st_size
        return StoredObject(datastore_id=self.id, location=key, size_bytes=size)

    def _upload_sync(self, object_key: str, path: Path, content_type: str) -> None:
        extra: dict[str, str] = {"ContentType": content_type}
        if self.storage_class is not None:
            extra["StorageClass"] = self.storage_class
        with path.open("rb") as body:
            # One PUT straight from the file below the multipart size: `upload_file` builds a
            # transfer manager with its own thread pool for every call, which for the usual
            # upload (a few MiB at most) cost more than the PUT.
            if os.fstat(body.fileno()).st_size <= SMALL_PUT_BYTES:
                self._client.put_object(Bucket=self.bucket, Key=object_key, Body=body, **extra)
                return
        self._client.upload_file(str(path), self.bucket, object_key, ExtraArgs=extra,
                                  Config=self._transfer_config)

    async def _head_size(self, object_key: str) -> int | None:
        """The object's size, or None when it does not exist."""
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise
        return int(head["ContentLength"])

    async def exists(self, key: str) -> bool:
        return await self._head_size(self._object_key(key)) is not None

    async def size(self, key: str) -> int:
        size = await self._head_size(self._object_key(key))
        if size is None:
            raise ObjectNotFound(key)
        return size

    async def open_stream(
        self, key: str, byte_range: ByteRange | None = None, chunk_size: int = 65536
    ) -> AsyncIterator[bytes]:
        """GET the object through its presigned URL and yield the body as it arrives."""
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if byte_range is not None:
            byte_range.check()
        url = self._read_urls.get(self, key, READ_URL_SECONDS)
        headers = {} if byte_range is None else {"Range": f"bytes={byte_range.start}-{byte_range.end}"}
        session = self._aio_session()
        try:
            async with session.get(url, headers=headers,
                                   skip_auto_headers=("Accept-Encoding",)) as response:
                if response.status >= 300:
                    body = await response.content.read(ERROR_BODY_MAX_BYTES)
                    self._raise_for(key, response.status, body)
                async for chunk in response.content.iter_chunked(chunk_size):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DatastoreUnavailable(f"s3 datastore {self.id!r}: {exc!r}") from exc

    def _aio_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._aio is None or self._aio[0] is not loop:
            timeout = aiohttp.ClientTimeout(sock_connect=READ_CONNECT_SECONDS,
                                            sock_read=READ_IDLE_SECONDS)
            self._aio = (loop, aiohttp.ClientSession(auto_decompress=False, timeout=timeout))
        return self._aio[1]

    def _raise_for(self, key: str, status: int, body: bytes) -> None:
        found = _ERROR_CODE.search(body)
        code = found.group(1).decode(errors="replace") if found else str(status)
        if status == 404 and code != "NoSuchBucket":
            raise ObjectNotFound(key)
        if status == 416:
            raise RangeNotSatisfiable(f"s3 datastore {self.id!r}: {code}")
        raise DatastoreUnavailable(f"s3 datastore {self.id!r}: GET answered {status} {code}")

    def presigned_get_url(self, key: str, expires_seconds: int) -> str:
        """A URL anyone holding it may GET the object from until it expires (signed locally,
        no request to S3): what an ingress fetches the bytes from for us."""
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._object_key(key)},
            ExpiresIn=expires_seconds)
        return url

    async def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=object_key)

    async def list_content_objects(self, after: str | None = None) -> AsyncIterator[ListedObject]:
        """ListObjectsV2 one page (up to 1000 keys) per worker-thread hop, in key order."""
        base = f"{self.prefix}/" if self.prefix else ""
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
            if token is not None:
                args["ContinuationToken"] = token
            elif after is not None:
                args["StartAfter"] = base + after
            page = await asyncio.to_thread(self._client.list_objects_v2, **args)
            for item in page.get("Contents", []):
                key = str(item["Key"])[len(base):]
                if is_content_key(key):
                    yield ListedObject(key, int(item["Size"]), item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    async def sweep_partials(self, older_than: float, dry_run: bool) -> tuple[int, int]:
        """Abort multipart uploads begun before `older_than`: a killed uploader's parts are
        stored (and billed) but never shown as an object. Their bytes are not counted."""
        return await asyncio.to_thread(self._abort_stale_uploads, older_than, dry_run), 0

    def _abort_stale_uploads(self, older_than: float, dry_run: bool) -> int:
        aborted = 0
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""):
            for upload in page.get("Uploads", []):
                if upload["Initiated"].timestamp() >= older_than:
                    continue
                if not dry_run:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted += 1
        return aborted

    async def check_ready(self) -> None:
        """HEAD the bucket: proves the endpoint answers, the credentials work and it exists.

        No probe write: readiness checks run often and S3 writes cost money.
        """
        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except Exception as exc:
            raise DatastoreUnavailable(f"s3 datastore {self.id!r} bucket {self.bucket!r}: {exc}") from exc

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests, and `mmr` at start when configured)."""
        await asyncio.to_thread(self._ensure_bucket_sync)

    def _ensure_bucket_sync(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _NO_BUCKET_CODES:
                raise
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**args)
        except ClientError as exc:
            # Another process won the race to create it.
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    async def local_path(self, key: str) -> Path | None:
        return None  # objects live on the S3 server: stream them

    def public_url(self, key: str) -> str | None:
        """`public_base_url` points at the bucket root, so the prefix is part of the path."""
        object_key = self._object_key(key)
        if self.public_base_url is None:
            return None
        return f"{self.public_base_url.rstrip('/')}/{object_key}"

    def object_url(self, key: str) -> str | None:
        """`{endpoint}/{bucket}/{key}`: MMR's `s3_url` of an exported item."""
        return f"{self.endpoint_url.rstrip('/')}/{self.bucket}/{self._object_key(key)}"

    async def close(self) -> None:
        if self._aio is not None:
            await self._aio[1].close()
        self._aio = None
        await asyncio.to_thread(self._client.close)
