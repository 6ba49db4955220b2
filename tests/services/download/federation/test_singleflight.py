"""Many clients asking for the same uncached remote media at once cause exactly one federation
request: across two real download processes of a cluster (Redis lock), and inside the embedded
default (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import TEST_SECRET
from tests.infra.processes import MmrProcess, start_mmr
from tests.infra.synapse import SynapseServer
from tests.services.download.federation.conftest import ServeMmr
from tests.services.download.federation.helpers import federation_requests, media_id_of
from tests.services.download.helpers import DOWNLOAD, unique_bytes

CLIENTS = 24


async def _ask_concurrently(urls: list[str], host: str, path: str) -> list[httpx.Response]:
    headers = {"Host": host, "Authorization": f"Bearer {TEST_SECRET}"}
    async with httpx.AsyncClient(headers=headers, timeout=120) as client:
        return await asyncio.gather(*(
            client.get(urls[index % len(urls)] + path) for index in range(CLIENTS)
        ))


@pytest.fixture
def download_processes(
    mmr_raw_config: Any, tmp_path: Path, synapse_a: SynapseServer
) -> Iterator[list[MmrProcess]]:
    """Two `mmr serve download` processes (machines 11 and 12) of one cluster."""
    config_path = tmp_path / "media-repo.yaml"
    config_path.write_text(yaml.safe_dump(mmr_raw_config("cluster")))
    processes = [
        start_mmr(f"download-{machine}", ["serve", "download", "--config", str(config_path)],
                  tmp_path / "logs", env={"MACHINE_ID": str(machine)})
        for machine in (11, 12)
    ]
    try:
        for process in processes:
            process.wait_healthy()
        yield processes
    finally:
        for process in processes:
            process.stop()


async def test_one_fetch_across_two_download_processes(
    download_processes: list[MmrProcess], synapse_a: SynapseServer, synapse_b: SynapseServer,
    b_uploader_token: str,
) -> None:
    data = unique_bytes(2 * 1024 * 1024)
    media_id = media_id_of(synapse_b.upload(b_uploader_token, data, "video/mp4"))
    responses = await _ask_concurrently(
        [process.url for process in download_processes], synapse_a.server_name,
        f"{DOWNLOAD}/{synapse_b.server_name}/{media_id}",
    )
    assert [r.status_code for r in responses] == [200] * CLIENTS, responses[0].text
    assert all(r.content == data for r in responses)
    # Give a (wrong) second fetch the time to show up in B's access log before counting.
    assert synapse_b.wait_for_requests(media_id, 2, timeout=1.0) == 1
    assert federation_requests(synapse_b, media_id) == 1


async def test_one_fetch_inside_the_embedded_default(
    serve_mmr: ServeMmr, synapse_a: SynapseServer, synapse_b: SynapseServer, b_uploader_token: str,
) -> None:
    data = unique_bytes(2 * 1024 * 1024)
    media_id = media_id_of(synapse_b.upload(b_uploader_token, data, "video/mp4"))
    mmr = serve_mmr()
    responses = await _ask_concurrently(
        [mmr.url], synapse_a.server_name, f"{DOWNLOAD}/{synapse_b.server_name}/{media_id}"
    )
    assert [r.status_code for r in responses] == [200] * CLIENTS
    assert all(r.content == data for r in responses)
    assert synapse_b.wait_for_requests(media_id, 2, timeout=1.0) == 1
