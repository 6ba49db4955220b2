"""Numbers in admin paths and queries that no database column holds (or that only look like
digits) are 400 `M_INVALID_PARAM`, never an overflow deep in a query or a task."""

from __future__ import annotations

import pytest

from tests.conftest import RunningMmr

HUGE = str(2**63)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", f"/_synapse/admin/v1/purge_media_cache?before_ts={HUGE}"),
    ("POST", "/_synapse/admin/v1/purge_media_cache?before_ts=-5"),
    ("POST", f"/_matrix/media/unstable/admin/purge_remote?before_ts={HUGE}"),
    ("POST", f"/_matrix/media/unstable/admin/purge/old?before_ts={HUGE}"),
    ("GET", f"/_matrix/media/unstable/admin/tasks/{HUGE}"),
    ("GET", "/_matrix/media/unstable/admin/tasks/%C2%B2"),  # '²': str.isdigit() says yes
    ("GET", f"/_synapse/admin/v1/statistics/users/media?from_ts={HUGE}"),
])
async def test_numbers_out_of_range_are_400(embedded: RunningMmr, method: str, path: str) -> None:
    async with embedded.client() as client:
        got = await client.request(method, path)
    assert (got.status_code, got.json()["errcode"]) == (400, "M_INVALID_PARAM"), got.text
