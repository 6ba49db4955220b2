"""Helpers shared by the datastore tests: S3 test stores and peak-memory measurement."""

from __future__ import annotations

import tracemalloc
from collections.abc import Awaitable
from typing import TypeVar

from shared.storage.s3 import S3Datastore
from tests.infra.seaweedfs import S3Server

T = TypeVar("T")
PUBLIC_BASE_URL = "https://cdn.example.org/media/"


async def peak_traced_bytes(operation: Awaitable[T]) -> tuple[T, int]:
    """Await `operation` under tracemalloc; return its result and the peak bytes allocated.

    tracemalloc sees every Python allocation in every thread (boto3's transfer threads
    included), so a buffered copy of a large object would show up in the peak.
    """
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = await operation
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def make_s3_datastore(
    server: S3Server, bucket: str, *, prefix: str = "", public_base_url: str | None = None,
    multipart: bool = True,
) -> S3Datastore:
    return S3Datastore(
        id="s3",
        kinds=frozenset({"all"}),
        endpoint=server.endpoint,
        bucket=bucket,
        region=server.region,
        access_key_id=server.access_key,
        access_secret=server.secret_key,
        ssl=False,
        path_style=True,
        storage_class="STANDARD",
        public_base_url=public_base_url,
        prefix=prefix,
        multipart=multipart,
    )


def remove_bucket(server: S3Server, bucket: str) -> None:
    """Empty then delete a bucket, so big test objects do not pile up on disk."""
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)
