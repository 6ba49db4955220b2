"""The fixture site the preview tests fetch: one route per kind of page the issue lists."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

from PIL import Image

from tests.infra.fixture_web import FixtureWebServer, page, redirect, streamed

IMAGE_SIZE = (279, 129)
HUGE_BYTES = 2 * 1024 * 1024
"""Larger than the test config's maxPageSizeBytes (1 MiB)."""
BIG_MEDIA_BYTES = 64 * 1024 * 1024
"""A video/audio/archive body far larger than any socket buffer: reading it would show."""


def png_bytes(size: tuple[int, int] = IMAGE_SIZE, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


OPENGRAPH = """<!doctype html><html><head>
<meta property="og:title" content="The Rock">
<meta property="og:type" content="video.movie">
<meta property="og:url" content="http://www.imdb.com/title/tt0117500/">
<meta property="og:site_name" content="IMDb">
<meta property="og:description" content="A renegade general and his Marines take over Alcatraz.">
<meta property="og:image" content="/image.png">
<title>Ignored because og:title wins</title></head>
<body><p>Body text that is not the description because og:description exists.</p></body></html>"""

TWITTER_ONLY = """<html><head>
<meta name="twitter:card" content="summary">
<meta name="twitter:title" content="Tweet-ish title">
<meta name="twitter:description" content="Described only by a Twitter card.">
<meta name="twitter:image" content="img/../image.png">
</head><body></body></html>"""

BARE = """<html><head><title>  A   bare
  page </title></head><body>
<nav>Home | About | Contact</nav>
<h1>Heading that is not the title</h1>
<p>Hi</p>
<p>This is the first meaningful paragraph of the bare page, long enough to describe it.</p>
<img src="/spacer.gif" width="1" height="1">
<img src="image.png">
</body></html>"""

H1_ONLY = "<html><body><h1>Only a heading</h1></body></html>"
EMPTY = "<html><head></head><body></body></html>"

OEMBED_DISCOVERY = """<html><head>
<title>Page title loses to oEmbed</title>
<link rel="alternate" type="application/json+oembed" href="/oembed.json?format=json">
</head><body><p>Nothing else of note on this page, except this sentence.</p></body></html>"""

OEMBED_ANSWER = {
    "version": "1.0", "type": "rich", "title": "An oEmbed title", "provider_name": "Fixture Site",
    "html": "<blockquote><p>Embedded text from the oEmbed HTML.</p></blockquote>",
    "thumbnail_url": "/image.png",
}

LATIN1_TITLE = "Café crème brûlée à la française"
CP1251_TITLE = "Привет, мир: тестовая страница"
SHIFT_JIS_TITLE = "日本語のページ"
DETECT_TEXT = ("Съешь же ещё этих мягких французских булок, да выпей чаю. " * 8).strip()

MALFORMED = (b"<html><head><title>Still <b>here</title><meta property='og:title' content='Broken"
             b"<meta property=\"og:description\" content=\"survives\"<body><<<>>></div></p>"
             b"\x00\xff\xfe<script>unterminated")

LONG_TITLE = " ".join(f"word{i}" for i in range(60))
LONG_DESCRIPTION = " ".join(f"lorem{i}" for i in range(400))


def install(web: FixtureWebServer, internal: FixtureWebServer) -> None:
    """Register every fixture page on `web`; `internal` is an address the tests never allow."""
    routes = web.routes
    image = png_bytes()
    routes["/og.html"] = page(OPENGRAPH)
    routes["/twitter.html"] = page(TWITTER_ONLY)
    routes["/bare.html"] = page(BARE)
    routes["/h1.html"] = page(H1_ONLY)
    routes["/empty.html"] = page(EMPTY)
    routes["/image.png"] = page(image, "image/png")
    routes["/spacer.gif"] = page(b"GIF89a", "image/gif")
    routes["/not-an-image.png"] = page("<html>oops</html>")
    routes["/og-broken-image.html"] = page(OPENGRAPH.replace("/image.png", "/not-an-image.png"))
    routes["/og-missing-image.html"] = page(OPENGRAPH.replace("/image.png", "/nope.png"))
    routes["/oembed.html"] = page(OEMBED_DISCOVERY)
    routes["/oembed.json"] = page(json.dumps(OEMBED_ANSWER), "application/json")
    routes["/latin1.html"] = page(
        f"<html><head><title>{LATIN1_TITLE}</title></head></html>".encode("iso-8859-1"),
        "text/html; charset=ISO-8859-1",
    )
    routes["/cp1251-meta.html"] = page(
        f'<html><head><meta charset="windows-1251"><title>{CP1251_TITLE}</title></head></html>'
        .encode("cp1251"), "text/html",
    )
    routes["/xml-decl.html"] = page(
        f'<?xml version="1.0" encoding="shift_jis"?><html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>{SHIFT_JIS_TITLE}</title></head></html>".encode("shift_jis"),
        "application/xhtml+xml",
    )
    routes["/detect.html"] = page(
        f"<html><head><title>{DETECT_TEXT[:40]}</title></head><body><p>{DETECT_TEXT}</p></body></html>"
        .encode("cp1251"), "text/html",
    )
    routes["/malformed.html"] = page(MALFORMED)
    routes["/long.html"] = page(
        f'<html><head><title>{LONG_TITLE}</title><meta name="description" content="{LONG_DESCRIPTION}">'
        "</head></html>"
    )
    routes["/huge-declared.html"] = page(b"<html>" + b" " * HUGE_BYTES + b"</html>")
    routes["/huge-streamed.html"] = streamed(_chunks(b"<p>" + b"x" * 65533, HUGE_BYTES * 4),
                                             "text/html")
    routes["/slow.html"] = streamed(lambda: iter([b"<html><title>slow</title>"] + [b" "] * 40),
                                    "text/html", delay_seconds=0.15)
    routes["/slow-ok.html"] = streamed(lambda: iter([OPENGRAPH.encode()] + [b" "] * 8), "text/html",
                                       delay_seconds=0.05)
    routes["/redirect/1"] = redirect("/redirect/2", 301)
    routes["/redirect/2"] = redirect(web.url("/redirect/3"), 307)
    routes["/redirect/3"] = redirect("/og.html", 302)
    for hop in range(10):
        routes[f"/loop/{hop}"] = redirect(f"/loop/{hop + 1}")
    routes["/to-internal"] = redirect(internal.url("/secret.html", host="internal.test"))
    routes["/to-internal-ip"] = redirect(internal.url("/secret.html"))
    routes["/to-file"] = redirect("file:///etc/passwd")
    routes["/to-denied"] = redirect(web.url("/private/og.html"))
    routes["/private/og.html"] = page(OPENGRAPH)
    routes["/og-internal-image.html"] = page(
        OPENGRAPH.replace("/image.png", internal.url("/image.png", host="internal.test"))
    )
    for path, content_type in (("/video.mp4", "video/mp4"), ("/audio.mp3", "audio/mpeg"),
                               ("/archive.zip", "application/zip")):
        routes[path] = streamed(_chunks(b"\0" * 65536, BIG_MEDIA_BYTES), content_type)
    internal.routes["/secret.html"] = page(OPENGRAPH)
    internal.routes["/image.png"] = page(image, "image/png")


def _chunks(chunk: bytes, total: int) -> Callable[[], Iterator[bytes]]:
    def generate() -> Iterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk

    return generate
