"""`repo.freezeUnauthenticatedMedia`: media uploaded while it is on is served only on the
authenticated `/_matrix/client/v1/media/*` routes; what was uploaded before stays reachable on
the legacy ones. The flag is decided per upload, at upload time.
"""

from __future__ import annotations

import httpx

from shared.config import MmrConfig
from tests.conftest import RunningMmr
from tests.services.upload.conftest import ConfigFactory, Serve
from tests.services.upload.helpers import (
    DOWNLOAD,
    LEGACY_DOWNLOAD,
    assert_error,
    create,
    media_path,
    put,
    unique_bytes,
    upload,
)


def with_freeze(config: MmrConfig, freeze: bool) -> MmrConfig:
    repo = config.repo.model_copy(update={"freeze_unauthenticated_media": freeze})
    return config.model_copy(update={"repo": repo})


async def upload_both_ways(node: RunningMmr) -> list[str]:
    """One sync upload and one async upload; their MXCs."""
    async with node.client() as client:
        sync = (await upload(client, unique_bytes())).json()["content_uri"]
        reserved = (await create(client)).json()["content_uri"]
        assert (await put(client, reserved, unique_bytes())).status_code == 200
    return [sync, reserved]


async def legacy_status(node: RunningMmr, mxc: str) -> int:
    async with httpx.AsyncClient(base_url=node.url, headers={"Host": "localhost"}) as anonymous:
        return (await anonymous.get(f"{LEGACY_DOWNLOAD}/{media_path(mxc)}")).status_code


async def test_frozen_media_only_on_authenticated_routes(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(make_config())  # freezeUnauthenticatedMedia defaults to on
    for mxc in await upload_both_ways(node):
        async with httpx.AsyncClient(base_url=node.url, headers={"Host": "localhost"}) as anonymous:
            legacy = await anonymous.get(f"{LEGACY_DOWNLOAD}/{media_path(mxc)}")
        assert_error(legacy, 404, "M_NOT_FOUND")
        async with node.client() as client:
            # A token does not unfreeze the legacy route: only the v1 route serves it.
            assert (await client.get(f"{LEGACY_DOWNLOAD}/{media_path(mxc)}")).status_code == 404
            assert (await client.get(f"{DOWNLOAD}/{media_path(mxc)}")).status_code == 200


async def test_unfrozen_media_on_both_routes(make_config: ConfigFactory, serve: Serve) -> None:
    node = serve(with_freeze(make_config(), False))
    for mxc in await upload_both_ways(node):
        assert await legacy_status(node, mxc) == 200
        async with node.client() as client:
            assert (await client.get(f"{DOWNLOAD}/{media_path(mxc)}")).status_code == 200


async def test_freeze_is_decided_at_upload_time(make_config: ConfigFactory, serve: Serve) -> None:
    config = make_config()
    before_freeze = await upload_both_ways(serve(with_freeze(config, False)))
    frozen_node = serve(with_freeze(config, True), machine_id=21)  # each process its own ID
    during_freeze = await upload_both_ways(frozen_node)
    for mxc in before_freeze:
        assert await legacy_status(frozen_node, mxc) == 200
    for mxc in during_freeze:
        assert await legacy_status(frozen_node, mxc) == 404
    # Turning the freeze off later does not unfreeze what was uploaded during it.
    thawed_node = serve(with_freeze(config, False), machine_id=22)
    assert [await legacy_status(thawed_node, mxc) for mxc in before_freeze + during_freeze] == [
        200, 200, 404, 404,
    ]
