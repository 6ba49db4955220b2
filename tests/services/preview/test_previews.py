"""What a user gets back for each kind of page, in the embedded default and on a cluster node."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.infra.fixture_web import FixtureWebServer
from tests.services.preview import pages
from tests.services.preview.conftest import PAGE_SIZE_LIMIT, Previewer, unique

IMAGE = pages.png_bytes()


@pytest.fixture(params=["embedded", "cluster"])
def node(request: pytest.FixtureRequest) -> Previewer:
    if request.param == "embedded":
        return request.getfixturevalue("previewer")  # type: ignore[no-any-return]
    return request.getfixturevalue("cluster_previewers")[0]  # type: ignore[no-any-return]


async def assert_rehosted_image(node: Previewer, preview: dict[str, Any]) -> None:
    """og:image is our own mxc:// with the real type, size and dimensions, and downloads back."""
    assert preview["og:image"].startswith("mxc://localhost/")
    assert preview["og:image:type"] == "image/png"
    assert preview["matrix:image:size"] == len(IMAGE)
    assert (preview["og:image:width"], preview["og:image:height"]) == pages.IMAGE_SIZE
    async with node.client() as client:
        got = await client.get(f"/_matrix/client/v1/media/download/{preview['og:image'][6:]}")
    assert got.status_code == 200
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(IMAGE).digest()


async def test_opengraph_page_gives_a_rich_preview_with_the_image_rehosted(
    node: Previewer, web: FixtureWebServer
) -> None:
    response = await node.preview(unique(web.url("/og.html")))
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["og:title"] == "The Rock"
    assert preview["og:type"] == "video.movie"
    assert preview["og:url"] == "http://www.imdb.com/title/tt0117500/"
    assert preview["og:site_name"] == "IMDb"
    assert preview["og:description"] == "A renegade general and his Marines take over Alcatraz."
    await assert_rehosted_image(node, preview)


async def test_the_rehosted_image_belongs_to_the_requesting_user(
    previewer: Previewer, web: FixtureWebServer, runtime_for: Any
) -> None:
    from shared.db.repositories.media import get_media

    preview = (await previewer.preview(unique(web.url("/og.html")))).json()
    rt = await runtime_for(previewer.config)
    origin, media_id = preview["og:image"][6:].split("/")
    async with rt.sessions() as session:
        record = await get_media(session, origin, media_id)
    assert record is not None and record.user_id == "@sharedsecret"


async def test_legacy_routes_answer_the_same(previewer: Previewer, web: FixtureWebServer) -> None:
    url = unique(web.url("/og.html"))
    async with previewer.client() as client:
        for path in ("/_matrix/media/v3/preview_url", "/_matrix/media/r0/preview_url"):
            response = await client.get(path, params={"url": url})
            assert response.status_code == 200
            assert response.json()["og:title"] == "The Rock"


async def test_twitter_card_only_page_is_mapped_to_og(previewer: Previewer, web: FixtureWebServer) -> None:
    preview = (await previewer.preview(unique(web.url("/twitter.html")))).json()
    assert preview["og:title"] == "Tweet-ish title"
    assert preview["og:description"] == "Described only by a Twitter card."
    await assert_rehosted_image(previewer, preview)


async def test_bare_html_falls_back_to_title_body_text_and_first_real_image(
    previewer: Previewer, web: FixtureWebServer
) -> None:
    preview = (await previewer.preview(unique(web.url("/bare.html")))).json()
    assert preview["og:title"] == "A bare page"
    assert preview["og:description"].startswith("This is the first meaningful paragraph")
    await assert_rehosted_image(previewer, preview)


async def test_heading_stands_in_for_a_missing_title(previewer: Previewer, web: FixtureWebServer) -> None:
    preview = (await previewer.preview(unique(web.url("/h1.html")))).json()
    assert preview["og:title"] == "Only a heading"


async def test_a_page_with_nothing_gives_an_empty_object(previewer: Previewer, web: FixtureWebServer) -> None:
    response = await previewer.preview(unique(web.url("/empty.html")))
    assert response.status_code == 200
    assert response.json() == {}


async def test_oembed_discovery_refines_the_page(previewer: Previewer, web: FixtureWebServer) -> None:
    preview = (await previewer.preview(unique(web.url("/oembed.html")))).json()
    assert preview["og:title"] == "An oEmbed title"
    assert preview["og:site_name"] == "Fixture Site"
    assert preview["og:description"] == "Embedded text from the oEmbed HTML."
    await assert_rehosted_image(previewer, preview)


@pytest.mark.parametrize(
    ("path", "title"),
    [("/latin1.html", pages.LATIN1_TITLE), ("/cp1251-meta.html", pages.CP1251_TITLE),
     ("/xml-decl.html", pages.SHIFT_JIS_TITLE), ("/detect.html", pages.DETECT_TEXT[:40].strip())],
    ids=["http-header", "meta-charset", "xml-declaration", "detected"],
)
async def test_non_utf8_pages_come_out_right(
    previewer: Previewer, web: FixtureWebServer, path: str, title: str
) -> None:
    preview = (await previewer.preview(unique(web.url(path)))).json()
    assert preview["og:title"] == title


async def test_titles_and_descriptions_are_trimmed_at_word_boundaries(
    previewer: Previewer, web: FixtureWebServer
) -> None:
    preview = (await previewer.preview(unique(web.url("/long.html")))).json()
    title, description = preview["og:title"], preview["og:description"]
    assert title.endswith("…") and len(title) <= 150 and len(title[:-1].split(" ")) <= 30
    assert description.endswith("…") and len(description) <= 200
    assert all(word.startswith("lorem") and word[5:].isdigit()
               for word in description[:-1].split(" "))  # no word cut in half


async def test_a_direct_image_url_becomes_the_preview_image(
    node: Previewer, web: FixtureWebServer
) -> None:
    preview = (await node.preview(unique(web.url("/image.png")))).json()
    await assert_rehosted_image(node, preview)


async def test_redirect_chains_are_followed(previewer: Previewer, web: FixtureWebServer) -> None:
    preview = (await previewer.preview(unique(web.url("/redirect/1")))).json()
    assert preview["og:title"] == "The Rock"


async def test_too_many_redirects_fail_clearly(previewer: Previewer, web: FixtureWebServer) -> None:
    response = await previewer.preview(unique(web.url("/loop/0")))
    assert response.status_code == 502
    assert "redirects more than 5 times" in response.json()["error"]


async def test_a_broken_or_missing_image_leaves_the_rest_of_the_preview(
    previewer: Previewer, web: FixtureWebServer
) -> None:
    for path in ("/og-broken-image.html", "/og-missing-image.html"):
        preview = (await previewer.preview(unique(web.url(path)))).json()
        assert preview["og:title"] == "The Rock"
        assert not any(key.startswith("og:image") for key in preview)


async def test_malformed_html_never_crashes_the_service(previewer: Previewer, web: FixtureWebServer) -> None:
    response = await previewer.preview(unique(web.url("/malformed.html")))
    assert response.status_code == 200
    assert isinstance(response.json(), dict)
    assert (await previewer.preview(unique(web.url("/og.html")))).status_code == 200


@pytest.mark.parametrize("path", ["/huge-declared.html", "/huge-streamed.html"])
async def test_pages_over_max_page_size_are_refused_without_buffering_them(
    previewer: Previewer, web: FixtureWebServer, path: str
) -> None:
    response = await previewer.preview(unique(web.url(path)))
    assert response.status_code == 502
    assert response.json()["errcode"] == "M_TOO_LARGE"
    assert str(PAGE_SIZE_LIMIT) in response.json()["error"]


async def test_a_slow_page_times_out(previewer: Previewer, web: FixtureWebServer) -> None:
    response = await previewer.preview(unique(web.url("/slow.html")))
    assert response.status_code == 502
    assert "Timed out" in response.json()["error"]


@pytest.mark.parametrize("path", ["/video.mp4", "/audio.mp3", "/archive.zip"])
async def test_video_audio_and_archives_are_refused_without_downloading_them(
    previewer: Previewer, web: FixtureWebServer, path: str
) -> None:
    response = await previewer.preview(unique(web.url(path)))
    assert response.status_code == 404
    assert response.json()["errcode"] == "M_NOT_FOUND"
    assert web.bytes_sent.get(path, 0) < pages.BIG_MEDIA_BYTES // 4


async def test_upstream_404_is_a_404(previewer: Previewer, web: FixtureWebServer) -> None:
    response = await previewer.preview(unique(web.url("/missing.html")))
    assert response.status_code == 404


async def test_accept_language_and_user_agent_go_upstream(
    previewer: Previewer, web: FixtureWebServer
) -> None:
    url = unique(web.url("/og.html"))
    async with previewer.client(headers={"Accept-Language": "de-DE,de;q=0.9"}) as client:
        await client.get("/_matrix/client/v1/media/preview_url", params={"url": url})
    seen = next(r for r in web.requests if r.path == url.split(str(web.port), 1)[1])
    assert seen.headers["accept-language"] == "de-DE,de;q=0.9"
    assert "link preview bot" in seen.headers["user-agent"]
    await previewer.preview(url2 := unique(web.url("/og.html")))
    seen = next(r for r in web.requests if r.path == url2.split(str(web.port), 1)[1])
    assert seen.headers["accept-language"] == "en-US,en"
