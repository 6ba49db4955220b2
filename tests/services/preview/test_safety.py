"""The SSRF matrix: every way of reaching an internal address is refused, with no connection.

`guarded` runs with matrix-media-repo's default network lists; `previewer` allows only the
fixture site's address (127.0.0.1), so 127.0.0.2 (`internal`) stands for the internal network.
Names resolve through the tests' resolver (see conftest.RESOLVER_ANSWERS).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from shared.config import parse_config
from tests.conftest import embedded_raw_config
from tests.infra.fixture_web import FixtureWebServer
from tests.services.preview.conftest import (
    Previewer,
    preview_overrides,
    serve_previewer,
    unique,
)


@pytest.mark.parametrize(
    "host",
    [
        "evil.test",            # a name resolving to loopback
        "mixed.test",           # DNS answering one public and one private address
        "v6mapped.test",        # resolving to IPv4-mapped IPv6 loopback
        "127.0.0.1",
        "[::ffff:127.0.0.1]",   # IPv4-mapped IPv6 literal
        "2130706433",           # decimal
        "0x7f000001",           # hex
        "0x7f.0.0.1",           # mixed hex
        "127.1",                # short form
        "0177.0.0.1",           # octal
        "good.test@127.0.0.1",  # userinfo trick
        "unresolvable.test",
    ],
)
async def test_internal_addresses_are_refused_without_connecting(
    guarded: Previewer, web: FixtureWebServer, host: str
) -> None:
    before = web.connections
    response = await guarded.preview(unique(f"http://{host}:{web.port}/og.html"))
    assert response.status_code in (400, 403), response.text
    assert response.json()["errcode"] in ("M_FORBIDDEN", "M_INVALID_PARAM")
    assert web.connections == before


async def test_the_same_names_are_fetched_once_the_address_is_allowed(
    previewer: Previewer, web: FixtureWebServer
) -> None:
    """The control for the matrix above: the fixture site itself is reachable when allowed."""
    response = await previewer.preview(unique(f"http://evil.test:{web.port}/og.html"))
    assert response.status_code == 200
    assert response.json()["og:title"] == "The Rock"


@pytest.mark.parametrize("path", ["/to-internal", "/to-internal-ip"])
async def test_a_redirect_to_an_internal_address_is_refused_at_that_hop(
    previewer: Previewer, web: FixtureWebServer, internal: FixtureWebServer, path: str
) -> None:
    response = await previewer.preview(unique(web.url(path)))
    assert response.status_code == 403
    assert internal.connections == 0


async def test_an_og_image_on_an_internal_address_is_not_fetched(
    previewer: Previewer, web: FixtureWebServer, internal: FixtureWebServer
) -> None:
    preview = (await previewer.preview(unique(web.url("/og-internal-image.html")))).json()
    assert preview["og:title"] == "The Rock"
    assert "og:image" not in preview
    assert internal.connections == 0


@pytest.mark.parametrize(
    "url", ["ftp://example.org/", "file:///etc/passwd", "javascript:alert(1)", "gopher://x/",
            "http:///nohost", "not a url"],
)
async def test_only_http_and_https_urls_are_accepted(previewer: Previewer, url: str) -> None:
    response = await previewer.preview(url)
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_INVALID_PARAM"


async def test_a_redirect_to_another_scheme_is_refused(previewer: Previewer, web: FixtureWebServer) -> None:
    response = await previewer.preview(unique(web.url("/to-file")))
    assert response.status_code == 403


@pytest.mark.parametrize(
    "url",
    ["http://denied.test:{port}/og.html", "http://www.denied.test:{port}/og.html",
     "http://127.0.0.1:{port}/private/og.html"],
    ids=["host-glob", "subdomain-glob", "regex"],
)
async def test_the_url_deny_list_gives_403_without_fetching(
    previewer: Previewer, web: FixtureWebServer, url: str
) -> None:
    before = web.connections
    response = await previewer.preview(unique(url.format(port=web.port)))
    assert response.status_code == 403
    assert response.json()["errcode"] == "M_FORBIDDEN"
    assert web.connections == before


async def test_the_url_deny_list_applies_to_redirect_hops(
    previewer: Previewer, web: FixtureWebServer
) -> None:
    response = await previewer.preview(unique(web.url("/to-denied")))
    assert response.status_code == 403
    assert web.hits("/private/og.html") == 0


async def test_a_token_is_required(previewer: Previewer, web: FixtureWebServer) -> None:
    async with previewer.client(token=None) as client:
        response = await client.get("/_matrix/client/v1/media/preview_url",
                                    params={"url": web.url("/og.html")})
    assert response.status_code == 401


@pytest.mark.parametrize("params", [{}, {"url": "http://site.test/", "ts": "yesterday"}])
async def test_missing_url_or_bad_ts_is_a_clear_400(previewer: Previewer, params: dict[str, str]) -> None:
    async with previewer.client() as client:
        response = await client.get("/_matrix/client/v1/media/preview_url", params=params)
    assert response.status_code == 400
    assert response.json()["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM")


@pytest.fixture
def ports_limited(tmp_path: Path, web: FixtureWebServer) -> Iterator[Previewer]:
    config = parse_config(embedded_raw_config(tmp_path, **preview_overrides(allowedPorts=[80, 443])))
    with ExitStack() as stack:
        yield serve_previewer(stack, config, tmp_path)


async def test_allowed_ports_limit_where_previews_may_connect(
    ports_limited: Previewer, web: FixtureWebServer
) -> None:
    before = web.connections
    response = await ports_limited.preview(unique(web.url("/og.html")))
    assert response.status_code == 403
    assert "port" in response.json()["error"]
    assert web.connections == before
