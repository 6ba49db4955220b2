"""Preview images are the requester's local media, so the requester's upload quota holds for them.

(A bug once: re-hosted images skipped the quota check although they count towards it.)
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from shared.config import parse_config
from shared.db.repositories.quotas import user_usage
from tests.conftest import embedded_raw_config
from tests.infra.fixture_web import FixtureWebServer
from tests.services.preview.conftest import preview_overrides, serve_previewer, unique


async def test_a_user_at_their_file_quota_gets_previews_without_a_rehosted_image(
    tmp_path: Path, web: FixtureWebServer, runtime_for: Any
) -> None:
    quotas = {"enabled": True, "users": [{"glob": "@sharedsecret", "maxFiles": 1}]}
    config = parse_config(embedded_raw_config(tmp_path, uploads={"quotas": quotas},
                                              **preview_overrides()))
    with ExitStack() as stack:
        previewer = serve_previewer(stack, config, tmp_path)
        first = (await previewer.preview(unique(web.url("/og.html")))).json()
        second = (await previewer.preview(unique(web.url("/og.html")))).json()
    assert first["og:image"].startswith("mxc://")
    assert second["og:title"] == "The Rock"
    assert "og:image" not in second
    rt = await runtime_for(config)
    async with rt.sessions() as session:
        assert (await user_usage(session, "@sharedsecret")).files == 1
