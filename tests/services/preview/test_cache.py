"""Caching: by (url, language, hour bucket of ts), shared by every preview process, fetched once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mmr.embedded import all_routers
from services.preview.pipeline import hour_bucket
from shared.config import parse_config
from shared.db.repositories.previews import CachedPreview, get_preview, insert_preview
from shared.web.app import make_app
from tests.conftest import embedded_raw_config
from tests.infra.fixture_web import FixtureWebServer
from tests.infra.http_server import ServerThread
from tests.services.preview.conftest import Previewer, preview_overrides, serve_previewer, unique

HOUR_MS = 3_600_000


def fetches(web: FixtureWebServer, url: str) -> int:
    """How many requests for exactly this URL (path and query) reached the fixture site."""
    target = urlsplit(url)
    return sum(1 for r in web.requests if r.path == f"{target.path}?{target.query}")


async def test_a_second_preview_does_no_fetch(previewer: Previewer, web: FixtureWebServer) -> None:
    url = unique(web.url("/og.html"))
    first = (await previewer.preview(url)).json()
    second = (await previewer.preview(url)).json()
    assert first == second
    assert fetches(web, url) == 1


async def test_failures_are_cached_too(previewer: Previewer, web: FixtureWebServer) -> None:
    url = unique(web.url("/missing.html"))
    for _ in range(2):
        assert (await previewer.preview(url)).status_code == 404
    assert fetches(web, url) == 1


async def test_each_language_is_its_own_preview(previewer: Previewer, web: FixtureWebServer) -> None:
    url = unique(web.url("/og.html"))
    for language in ("fr", "de", "fr"):
        async with previewer.client(headers={"Accept-Language": language}) as client:
            response = await client.get("/_matrix/client/v1/media/preview_url", params={"url": url})
            assert response.status_code == 200
    assert fetches(web, url) == 2


async def test_ts_in_the_same_hour_hits_and_an_old_hour_is_served_as_stored(
    previewer: Previewer, web: FixtureWebServer, runtime_for: Any
) -> None:
    url = unique(web.url("/og.html"))
    now = int(time.time() * 1000)
    old_hour = hour_bucket(now) - 5 * HOUR_MS
    rt = await runtime_for(previewer.config)
    async with rt.sessions() as session:
        await insert_preview(session, url, "en-US,en", old_hour,
                             CachedPreview(preview={"og:title": "Historic"}), now)
        await session.commit()
    # Any ts within that old hour is that hour's preview (matrix-media-repo compares raw ts).
    historic = (await previewer.preview(url, ts=old_hour + 17 * 60_000)).json()
    assert historic == {"og:title": "Historic"}
    assert fetches(web, url) == 0
    # An hour with nothing stored gets a fresh preview, stored for the current hour...
    fresh = (await previewer.preview(url, ts=old_hour - HOUR_MS)).json()
    assert fresh["og:title"] == "The Rock"
    # ...which a ts of now (or no ts, or one in the future) then finds.
    for ts in (now, None, now + 10 * HOUR_MS):
        assert (await previewer.preview(url, **({"ts": ts} if ts else {}))).json() == fresh
    assert fetches(web, url) == 1
    async with rt.sessions() as session:
        assert await get_preview(session, url, "en-US,en", hour_bucket(now)) is not None


async def test_the_cache_serves_every_preview_process(
    cluster_previewers: tuple[Previewer, Previewer], web: FixtureWebServer
) -> None:
    first, second = cluster_previewers
    url = unique(web.url("/og.html"))
    on_first = (await first.preview(url)).json()
    on_second = (await second.preview(url)).json()
    assert on_first == on_second and on_first["og:image"].startswith("mxc://")
    assert fetches(web, url) == 1


async def test_the_same_url_asked_at_once_on_several_processes_is_fetched_once(
    cluster_previewers: tuple[Previewer, Previewer], web: FixtureWebServer
) -> None:
    url = unique(web.url("/slow-ok.html"))
    responses = await asyncio.gather(
        *(node.preview(url) for node in cluster_previewers for _ in range(4))
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert len({r.json()["og:image"] for r in responses}) == 1, [r.text for r in responses]
    assert fetches(web, url) == 1


@pytest.fixture
def disabled(tmp_path: Path, web: FixtureWebServer) -> Iterator[Previewer]:
    overrides = preview_overrides(enabled=False)
    config = parse_config(embedded_raw_config(tmp_path, **overrides))
    with ExitStack() as stack:
        yield serve_previewer(stack, config, tmp_path)


async def test_disabled_previews_are_a_clear_404(disabled: Previewer, web: FixtureWebServer) -> None:
    before = web.connections
    response = await disabled.preview(web.url("/og.html"))
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
    assert web.connections == before


@pytest.fixture
def reloadable(tmp_path: Path, web: FixtureWebServer) -> Iterator[tuple[Previewer, Any]]:
    """A previewer and its app, whose runtime's config a test replaces as a SIGHUP would."""
    config = parse_config(embedded_raw_config(tmp_path, **preview_overrides()))
    app = make_app("embedded", all_routers(), config=config)
    with ServerThread(app) as server:
        yield Previewer(server.url, config, tmp_path), app


async def test_an_answer_given_before_obeys_the_settings_of_each_request(
    reloadable: tuple[Previewer, Any], web: FixtureWebServer
) -> None:
    previewer, app = reloadable
    url = unique(web.url("/og.html"))
    assert (await previewer.preview(url)).status_code == 200
    rt = app.state.runtime
    previews = rt.config.url_previews
    rt.config = rt.config.model_copy(update={"url_previews": previews.model_copy(
        update={"url_deny_list": [*previews.url_deny_list, "127.0.0.1"]})})
    denied = await previewer.preview(url)
    assert denied.status_code == 403, denied.text
    assert denied.json()["errcode"] == "M_FORBIDDEN"
    rt.config = rt.config.model_copy(update={"url_previews": previews.model_copy(
        update={"enabled": False})})
    disabled = await previewer.preview(url)
    assert disabled.status_code == 404 and disabled.json()["errcode"] == "M_UNRECOGNIZED"
    rt.config = rt.config.model_copy(update={"url_previews": previews})
    assert (await previewer.preview(url)).status_code == 200
    assert fetches(web, url) == 1
