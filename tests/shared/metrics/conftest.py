"""mmr with `metrics.enabled` on loopback, and reading what its `/metrics` listener says.

The Prometheus registry is process-wide and other tests may have counted before, so tests compare
two scrapes (`Scrape.delta`) rather than absolute values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mmr.embedded import all_routers, all_start_hooks
from shared.config import MmrConfig, parse_config
from shared.web.app import make_app
from tests.conftest import RunningMmr, embedded_raw_config
from tests.infra.fixture_web import FixtureWebServer, page
from tests.infra.http_server import ServerThread, free_port

PREVIEW_PAGE = "/article"
PREVIEW_HTML = ('<html><head><meta property="og:title" content="Metered">'
                '<meta property="og:description" content="A page to preview"></head></html>')


def metrics_section(port: int) -> dict[str, Any]:
    return {"enabled": True, "bindAddress": "127.0.0.1", "port": port}


@dataclass(frozen=True)
class Scrape:
    """One read of a `/metrics` listener."""

    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        """The sum of sample `name` over every series whose labels include `labels`."""
        return sum(s.value for s in self.samples
                   if s.name == name and labels.items() <= s.labels.items())

    def delta(self, earlier: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - earlier.value(name, **labels)

    def label_values(self, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if label in s.labels}


def scrape(port: int) -> Scrape:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    families = text_string_to_metric_families(response.text)
    return Scrape([sample for family in families for sample in family.samples])


@dataclass
class MeteredMmr(RunningMmr):
    metrics_port: int

    def scrape(self) -> Scrape:
        return scrape(self.metrics_port)


def embedded_app(config: MmrConfig, machine_id: int = 0) -> FastAPI:
    """What `mmr serve` runs by default: every service's routes and start hooks in one app."""
    return make_app("embedded", all_routers(), config=config, machine_id=machine_id,
                    start_hooks=all_start_hooks())


@pytest.fixture(scope="session")
def preview_site() -> Iterator[FixtureWebServer]:
    with FixtureWebServer("127.0.0.1") as site:
        site.routes[PREVIEW_PAGE] = page(PREVIEW_HTML)
        yield site


@pytest.fixture(scope="session")
def metered(tmp_path_factory: pytest.TempPathFactory, preview_site: FixtureWebServer) -> Iterator[MeteredMmr]:
    """The embedded default with metrics on a port of its own (previews of loopback allowed)."""
    data_dir: Path = tmp_path_factory.mktemp("metered")
    port = free_port()
    config = parse_config(embedded_raw_config(
        data_dir, metrics=metrics_section(port),
        urlPreviews={"allowedNetworks": ["127.0.0.1/32"], "disallowedNetworks": []},
    ))
    with ExitStack() as stack:
        server = stack.enter_context(ServerThread(embedded_app(config)))
        yield MeteredMmr(server.url, config, data_dir, port)
