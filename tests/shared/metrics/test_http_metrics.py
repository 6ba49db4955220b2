"""Every HTTP request is counted and timed on `/metrics`, by route template, method and status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from tests.services.upload.helpers import DOWNLOAD, media_path, put, unique_bytes, upload
from tests.shared.metrics.conftest import MeteredMmr

REQUESTS = "media_http_requests_total"
DURATIONS = "media_http_request_duration_seconds_count"
IDS = {"service": "embedded", "machine_id": "0"}
UPLOAD_ROUTE = "/_matrix/media/v3/upload"
DOWNLOAD_ROUTE = "/_matrix/client/v1/media/download/{server_name}/{media_id}"
CONFIG_ROUTE = "/_matrix/media/v3/config"
UNKNOWN_MEDIA_ID = "NoSuchMediaHere"


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_requests_are_labelled_by_route_template_method_and_status(metered: MeteredMmr) -> None:
    before = metered.scrape()
    async with metered.client() as client:
        uploaded = await upload(client, unique_bytes())
        mxc_path = media_path(uploaded.json()["content_uri"])
        downloaded = await client.get(f"{DOWNLOAD}/{mxc_path}")
        missing = await client.get(f"{DOWNLOAD}/localhost/{UNKNOWN_MEDIA_ID}")
        config = await client.get(CONFIG_ROUTE)
        nowhere = await client.get("/_matrix/media/v3/no/such/endpoint")
        odd_method = await client.request("PROPFIND", CONFIG_ROUTE)
    async with metered.client(token=None) as anonymous:
        unauthenticated = await upload(anonymous, unique_bytes())
    statuses = [r.status_code for r in (uploaded, downloaded, missing, config, nowhere,
                                        odd_method, unauthenticated)]
    assert statuses == [200, 200, 404, 200, 404, 405, 401]

    after = metered.scrape()
    expected = [
        ("POST", UPLOAD_ROUTE, "200"), ("POST", UPLOAD_ROUTE, "401"),
        ("GET", DOWNLOAD_ROUTE, "200"), ("GET", DOWNLOAD_ROUTE, "404"),
        ("GET", CONFIG_ROUTE, "200"), ("GET", "unmatched", "404"),
        # Methods outside the usual few share one label value: clients cannot mint series.
        ("other", CONFIG_ROUTE, "405"),
    ]
    for method, route, status in expected:
        labels = {**IDS, "method": method, "route": route, "status": status}
        assert after.delta(before, REQUESTS, **labels) == 1, labels
        assert after.delta(before, DURATIONS, **labels) == 1, labels
    # The raw path (with its media ID) never becomes a label value.
    media_id = mxc_path.rsplit("/", 1)[1]
    assert not any(media_id in value for value in after.label_values("route"))
    assert "PROPFIND" not in after.label_values("method")


async def test_in_flight_gauge_counts_requests_being_answered(metered: MeteredMmr) -> None:
    in_flight = "media_http_requests_in_flight"
    async with metered.client() as client:
        created = await client.post("/_matrix/media/v1/create")
        mxc = created.json()["content_uri"]
        # A download of an async upload not uploaded yet waits for it: in flight meanwhile.
        waiting = asyncio.create_task(client.get(f"{DOWNLOAD}/{media_path(mxc)}",
                                                 params={"timeout_ms": 20000}))
        await wait_until(lambda: metered.scrape().value(in_flight, **IDS) == 1)
        assert (await put(client, mxc, unique_bytes())).status_code == 200
        assert (await waiting).status_code == 200
    assert metered.scrape().value(in_flight, **IDS) == 0


async def test_metrics_are_not_served_on_the_api_port(metered: MeteredMmr) -> None:
    async with httpx.AsyncClient(base_url=metered.url) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_UNRECOGNIZED"
