"""The orphan sweep on both datastore kinds: what no row references goes once it is old enough;
what rows reference, young objects and keys that are not content keys stay; a dry run only
counts; a sweep resumed from any checkpoint ends where an uninterrupted one does."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from shared.media.orphans import sweep_orphans
from shared.runtime import Runtime
from shared.storage.keys import content_key
from tests.conftest import RunningMmr

pytestmark = pytest.mark.asyncio
LATER = time.time() + 30 * 24 * 3600  # "now" for a sweep that finds every object old enough


@pytest.fixture(params=["embedded", "cluster_node"])
def node(request: pytest.FixtureRequest) -> RunningMmr:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


async def _put(rt: Runtime, data: bytes, key: str | None = None) -> str:
    key = key or content_key(hashlib.sha256(data).hexdigest())
    path = rt.temp_dir / f"orphan-test-{os.urandom(4).hex()}"
    path.write_bytes(data)
    try:
        await rt.datastores.all()[0].put_file(key, path, "application/octet-stream")
    finally:
        path.unlink()
    return key


async def _upload(node: RunningMmr, data: bytes) -> None:
    async with node.client() as client:
        response = await client.post("/_matrix/media/v3/upload", content=data)
        assert response.status_code == 200, response.text


async def _exists(rt: Runtime, key: str) -> bool:
    return await rt.datastores.all()[0].exists(key)


async def test_only_old_unreferenced_content_objects_go(node: RunningMmr, runtime_for: Any) -> None:
    rt: Runtime = await runtime_for(node.config)
    used_data = os.urandom(4096)
    await _upload(node, used_data)
    used = content_key(hashlib.sha256(used_data).hexdigest())
    orphans = [await _put(rt, os.urandom(1000 + i)) for i in range(3)]
    not_ours = await _put(rt, b"an archive", "archives/export-1.tgz")

    young = await sweep_orphans(rt, grace_seconds=3600)
    assert young["orphans"] == 0 and all([await _exists(rt, k) for k in orphans])

    dry = await sweep_orphans(rt, grace_seconds=3600, dry_run=True, now=LATER)
    assert (dry["orphans"], dry["orphan_bytes"]) == (3, 1000 + 1001 + 1002)
    assert all([await _exists(rt, k) for k in orphans])

    done = await sweep_orphans(rt, grace_seconds=3600, now=LATER)
    assert (done["orphans"], done["orphan_bytes"]) == (3, 3003)
    assert not any([await _exists(rt, k) for k in orphans])
    assert await _exists(rt, used) and await _exists(rt, not_ours)


async def test_a_resumed_sweep_finishes_the_work(
    node: RunningMmr, runtime_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted after its first checkpoint, restarted from the saved state."""
    import shared.media.orphans as orphans_module

    monkeypatch.setattr(orphans_module, "BATCH", 2)
    rt: Runtime = await runtime_for(node.config)
    keys = [await _put(rt, os.urandom(500 + i)) for i in range(5)]
    saved: list[dict[str, Any]] = []

    class Killed(Exception):
        pass

    async def crash_after_one_batch(state: dict[str, Any]) -> None:
        saved.append(state)
        if state["examined"] >= 2:
            raise Killed()

    with pytest.raises(Killed):
        await sweep_orphans(rt, 0, state=None, checkpoint=crash_after_one_batch, now=LATER)
    assert sum([await _exists(rt, k) for k in keys]) == 3
    resumed = await sweep_orphans(rt, 0, state=saved[-1], now=LATER)
    assert resumed["orphans"] == 5 and resumed["examined"] >= 5
    assert not any([await _exists(rt, k) for k in keys])


async def test_old_partial_objects_of_any_process_go(embedded: RunningMmr, runtime_for: Any) -> None:
    rt: Runtime = await runtime_for(embedded.config)
    root = Path(embedded.config.datastores[0].file_opts().path)
    folder = root / "ab" / "cd"
    folder.mkdir(parents=True, exist_ok=True)
    old, young = folder / ".abcd.old-format.tmp", folder / ".abcd.m3-p9-s9-x.tmp"
    old.write_bytes(b"o" * 700)
    young.write_bytes(b"y" * 300)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    result = await sweep_orphans(rt, grace_seconds=3600)
    assert (result["partials"], result["partial_bytes"]) == (1, 700)
    assert not old.exists() and young.exists()


async def test_incomplete_s3_multipart_uploads_are_aborted(
    cluster_node: RunningMmr, runtime_for: Any
) -> None:
    rt: Runtime = await runtime_for(cluster_node.config)
    opts = cluster_node.config.datastores[0].s3_opts()
    client = rt.datastores.all()[0]._client  # type: ignore[attr-defined]
    key = content_key(hashlib.sha256(b"parts").hexdigest())
    client.create_multipart_upload(Bucket=opts.bucket_name, Key=key)
    dry = await sweep_orphans(rt, grace_seconds=3600, dry_run=True, now=LATER)
    assert dry["partials"] == 1
    assert await sweep_orphans(rt, grace_seconds=3600, now=LATER)
    assert not client.list_multipart_uploads(Bucket=opts.bucket_name).get("Uploads")
