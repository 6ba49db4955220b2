"""`mmr admin datastores|transfer|export|import` against running servers, as an operator runs it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SERVER_NAME, TEST_SECRET, RunningMmr
from tests.infra.processes import run_mmr
from tests.services.archives.helpers import Nodes, upload


@pytest.fixture
def embedded_nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Nodes]:
    with contextlib.ExitStack() as stack:
        yield Nodes("embedded", tmp_path, request, stack)


async def mmr_admin(node: RunningMmr, *args: str) -> subprocess.CompletedProcess[str]:
    options = ["--url", node.url, "--token", TEST_SECRET, "--server-name", SERVER_NAME]
    return await asyncio.to_thread(run_mmr, ["admin", *options, *args], None, 120)


async def test_export_to_a_folder_and_import_it_elsewhere(embedded_nodes: Nodes, tmp_path: Path) -> None:
    source = embedded_nodes.serve(embedded_nodes.config(archiving={"targetBytesPerPart": 20_000}))
    media = {await upload(source, bytes([n]) * 15_000, "application/octet-stream", f"{n}.bin"): n
             for n in range(4)}
    folder = tmp_path / "exported"
    exported = await mmr_admin(source, "--json", "export", "--server", SERVER_NAME, "--to", str(folder))
    assert exported.returncode == 0, exported.stderr
    names = json.loads(exported.stdout)["parts"]
    assert names[-1] == "export-manifest.tgz" and len(names) == 3
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)

    target = embedded_nodes.serve(embedded_nodes.config())
    imported = await mmr_admin(target, "--json", "import", str(folder))
    assert imported.returncode == 0, imported.stderr
    result = json.loads(imported.stdout)
    assert result["imported"] == len(media) and result["missing"] == []
    async with target.client() as client:
        for media_id, n in media.items():
            answer = await client.get(f"/_matrix/client/v1/media/download/{SERVER_NAME}/{media_id}")
            assert answer.content == bytes([n]) * 15_000


async def test_datastores_and_a_refused_transfer(embedded_nodes: Nodes) -> None:
    node = embedded_nodes.serve(embedded_nodes.config())
    listed = await mmr_admin(node, "--json", "datastores")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["local"]["type"] == "file"
    same = await mmr_admin(node, "transfer", "local", "local")
    assert same.returncode == 1 and "cannot be the same" in same.stderr
