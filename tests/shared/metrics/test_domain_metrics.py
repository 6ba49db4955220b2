"""What the services count where the work happens: bytes uploaded and served, thumbnails made and
served, remote fetches, URL previews and rate-limited requests."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from PIL import Image

from shared.config import parse_config
from tests.conftest import embedded_raw_config
from tests.infra.fixture_web import FixtureWebServer
from tests.infra.http_server import ServerThread, free_port
from tests.services.upload.helpers import DOWNLOAD, media_path, unique_bytes, upload
from tests.shared.metrics.conftest import (
    PREVIEW_PAGE,
    MeteredMmr,
    embedded_app,
    metrics_section,
    scrape,
)

IDS = {"service": "embedded", "machine_id": "0"}
THUMBNAIL = "/_matrix/client/v1/media/thumbnail"
PREVIEW = "/_matrix/client/v1/media/preview_url"


def png(width: int = 300, height: int = 200) -> bytes:
    """A PNG no other test uploads (its colour is random)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), tuple(uuid.uuid4().bytes[:3])).save(out, format="PNG")
    return out.getvalue()


async def test_an_upload_counts_exactly_its_bytes(metered: MeteredMmr) -> None:
    data = unique_bytes(123_457)
    before = metered.scrape()
    async with metered.client() as client:
        assert (await upload(client, data)).status_code == 200
    after = metered.scrape()
    assert after.delta(before, "media_uploaded_bytes_total", **IDS) == len(data)
    assert after.delta(before, "media_uploads_total", **IDS) == 1


async def test_downloads_count_the_bytes_sent_and_nothing_for_head(metered: MeteredMmr) -> None:
    data = unique_bytes(300_000)  # more than one 256 KiB datastore read
    async with metered.client() as client:
        path = f"{DOWNLOAD}/{media_path((await upload(client, data)).json()['content_uri'])}"
        before = metered.scrape()
        assert len((await client.get(path)).content) == len(data)
        assert (await client.head(path)).status_code == 200
        ranged = await client.get(path, headers={"Range": "bytes=10-109"})
        assert ranged.status_code == 206
    after = metered.scrape()
    local = {**IDS, "origin": "local"}
    assert after.delta(before, "media_downloaded_bytes_total", **local) == len(data) + 100
    assert after.delta(before, "media_downloads_total", **local) == 2


async def test_a_thumbnail_is_generated_once_then_served_from_storage(metered: MeteredMmr) -> None:
    async with metered.client() as client:
        uploaded = await upload(client, png(), content_type="image/png")
        path = f"{THUMBNAIL}/{media_path(uploaded.json()['content_uri'])}"
        before = metered.scrape()
        for _ in range(3):
            response = await client.get(path, params={"width": 64, "height": 64})
            assert response.status_code == 200
    after = metered.scrape()
    assert after.delta(before, "media_thumbnails_generated_total", **IDS, outcome="ok") == 1
    assert after.delta(before, "media_thumbnail_generation_seconds_count", **IDS) == 1
    assert after.delta(before, "media_thumbnail_generation_seconds_sum", **IDS) > 0
    assert after.delta(before, "media_thumbnails_served_total", **IDS) == 3


async def test_a_failed_remote_fetch_is_counted_by_outcome(metered: MeteredMmr) -> None:
    before = metered.scrape()
    async with metered.client() as client:
        # `.invalid` never resolves (RFC 6761): the remote cannot be reached.
        response = await client.get(f"{DOWNLOAD}/unreachable.invalid/{uuid.uuid4().hex}")
    assert response.status_code == 502
    after = metered.scrape()
    assert after.delta(before, "media_remote_fetches_total", **IDS, outcome="failed") == 1
    assert after.delta(before, "media_remote_fetches_total", **IDS, outcome="ok") == 0


async def test_url_previews_count_fetches_and_cached_answers(
    metered: MeteredMmr, preview_site: FixtureWebServer
) -> None:
    url = preview_site.url(f"{PREVIEW_PAGE}?t={uuid.uuid4().hex}")
    missing = preview_site.url(f"/missing?t={uuid.uuid4().hex}")
    before = metered.scrape()
    async with metered.client() as client:
        for _ in range(2):
            response = await client.get(PREVIEW, params={"url": url})
            assert response.json()["og:title"] == "Metered"
        for _ in range(2):
            assert (await client.get(PREVIEW, params={"url": missing})).status_code >= 400
    after = metered.scrape()
    for outcome in ("ok", "error"):
        assert after.delta(before, "media_url_previews_total", **IDS, source="fetched",
                           outcome=outcome) == 1
        assert after.delta(before, "media_url_previews_total", **IDS, source="cached",
                           outcome=outcome) == 1


async def test_rate_limited_requests_are_counted_by_bucket(tmp_path: Path) -> None:
    port = free_port()
    config = parse_config(embedded_raw_config(
        tmp_path, metrics=metrics_section(port), repo={"trustAnyForwardedAddress": True},
        rateLimit={"enabled": True, "requestsPerSecond": 0.01, "burst": 3, "buckets": {
            "downloads": {"capacityBytes": 1000, "drainBytesPerMinute": 1, "overflowLimitBytes": 0}}},
    ))
    with ServerThread(embedded_app(config)) as server:
        running = MeteredMmr(server.url, config, tmp_path, port)
        before = scrape(port)
        async with running.client(headers={"X-Forwarded-For": "192.0.2.1"}) as client:
            statuses = [(await client.get("/_matrix/media/v3/config")).status_code for _ in range(4)]
        async with running.client(headers={"X-Forwarded-For": "192.0.2.2"}) as client:
            path = f"{DOWNLOAD}/{media_path((await upload(client, unique_bytes(800))).json()['content_uri'])}"
            statuses += [(await client.get(path)).status_code for _ in range(2)]
        after = scrape(port)
    assert statuses == [200, 200, 200, 429, 200, 429]
    assert after.delta(before, "media_rate_limited_total", **IDS, bucket="requests") == 1
    assert after.delta(before, "media_rate_limited_total", **IDS, bucket="downloads") == 1
    assert after.delta(before, "media_http_requests_total", **IDS, status="429") == 2
