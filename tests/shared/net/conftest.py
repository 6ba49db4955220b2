from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.infra.fixture_web import FixtureWebServer, page


@pytest.fixture
def web() -> Iterator[FixtureWebServer]:
    """A loopback page server that counts the TCP connections it accepts."""
    with FixtureWebServer() as server:
        server.routes["/"] = page("<html><title>hello</title></html>")
        yield server
