"""Fixtures for the datastore tests: a real S3 server (SeaweedFS) and one store of each kind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.storage.base import Datastore
from shared.storage.file import FileDatastore
from shared.storage.s3 import S3Datastore
from tests.infra.seaweedfs import S3Server, s3_server_from_env, start_seaweedfs
from tests.shared.storage.helpers import PUBLIC_BASE_URL, make_s3_datastore, remove_bucket


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server for the whole run: `MMR_TEST_S3_ENDPOINT` if set, else `weed mini`."""
    server = s3_server_from_env() or start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


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
