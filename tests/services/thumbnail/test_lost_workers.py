"""A thumbnail worker killed from outside (SIGKILL: the OOM killer, an operator) is not the
image's fault: the job is retried once on a fresh worker; lost again, the answer is 503 with
Retry-After, and nothing is remembered, so the same request succeeds once workers survive."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.services.thumbnail.conftest import Node, Serve, embedded_app
from tests.services.thumbnail.helpers import CLIENT, unique_jpeg, upload

pytestmark = pytest.mark.asyncio
PARAMS = {"width": 96, "height": 96, "method": "scale"}


@contextmanager
def killing_workers(node: Node, times: int | None) -> Iterator[list[int]]:
    """SIGKILL the pool's workers as soon as they are taken for a job (`times` of them, or all).

    Only busy ones: workers start with the service, and one killed while idle is replaced by the
    next job without that job noticing, so it would not test the retry."""
    killed: list[int] = []
    stop = threading.Event()

    def kill() -> None:
        while not stop.is_set() and (times is None or len(killed) < times):
            try:
                pids = node.pool.busy_pids
            except RuntimeError:  # the set changed while copied: look again
                continue
            for pid in pids:
                if pid not in killed and (times is None or len(killed) < times):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            stop.wait(0.001)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    try:
        yield killed
    finally:
        stop.set()
        killer.join()


@pytest.fixture
def node(serve: Serve, embedded_config: object) -> Node:
    """A fresh embedded default with one worker, started with it, that has run no job yet (one
    worker, so the one killed is the one the job needs, whether idle or mid-job)."""
    config = embedded_config(thumbnails={"numWorkers": 1})  # type: ignore[operator]
    return serve(embedded_app(config), config)


async def test_a_worker_lost_once_is_retried_on_a_fresh_one(node: Node) -> None:
    async with node.client() as client:
        media_id = await upload(client, unique_jpeg(1600, 1200), "image/jpeg")
        with killing_workers(node, times=1) as killed:
            response = await client.get(f"{CLIENT}/localhost/{media_id}", params=PARAMS)
    assert response.status_code == 200, response.text
    assert len(killed) == 1 and node.pool.workers_lost == 1


async def test_workers_lost_twice_is_503_with_retry_after_and_not_remembered(node: Node) -> None:
    async with node.client() as client:
        media_id = await upload(client, unique_jpeg(1600, 1200), "image/jpeg")
        with killing_workers(node, times=None) as killed:
            lost = await client.get(f"{CLIENT}/localhost/{media_id}", params=PARAMS)
        assert lost.status_code == 503, lost.text
        assert int(lost.headers["retry-after"]) > 0
        assert lost.json()["errcode"] == "M_UNKNOWN"
        assert len(killed) >= 2
        # Workers survive again: the same image at the same size is made at once.
        again = await client.get(f"{CLIENT}/localhost/{media_id}", params=PARAMS)
        assert again.status_code == 200, again.text
