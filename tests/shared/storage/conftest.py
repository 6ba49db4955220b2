"""Fixtures for the datastore tests: a real S3 server (SeaweedFS) and one store of each kind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.storage.base import Datastore
from shared.storage.file import FileDatastore
from shared.storage.s3 import S3Datastore
from tests.infra.seaweedfs import S3Server
from tests.shared.storage.helpers import PUBLIC_BASE_URL, make_s3_datastore, remove_bucket


@pytest.fixture
def file_datastore(tmp_path: Path) -> FileDatastore:
    return FileDatastore(id="files", kinds=frozenset({"all"}), path=tmp_path / "datastore")


@pytest.fixture
async def s3_datastore(s3_server: S3Server) -> AsyncIterator[S3Datastore]:
    """A datastore on a fresh bucket, removed (with its objects) after the test."""
    bucket = f"mmr-test-{uuid.uuid4().hex[:16]}"
    store = make_s3_datastore(s3_server, bucket, public_base_url=PUBLIC_BASE_URL)
    await store.ensure_bucket()
    yield store
    await store.close()
    await asyncio.to_thread(remove_bucket, s3_server, bucket)


@pytest.fixture(params=["file", "s3"])
def datastore(request: pytest.FixtureRequest) -> Datastore:
    """Each behaviour test runs once per implementation."""
    store: Datastore = request.getfixturevalue(f"{request.param}_datastore")
    return store
