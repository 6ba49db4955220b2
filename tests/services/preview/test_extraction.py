"""Pure extraction rules (no network): charsets, trimming, fallbacks, oEmbed mapping."""

from __future__ import annotations

import pytest

from services.preview import html, oembed

LIMITS = html.TextLimits(title_words=5, title_chars=30, description_words=10, description_chars=60)


def extract(markup: str, url: str = "https://site.test/a/page.html") -> html.HtmlPreview:
    return html.extract(html.parse_html(markup), url, LIMITS)


@pytest.mark.parametrize(
    ("text", "words", "chars", "expected"),
    [
        ("short title", 5, 30, "short title"),
        ("one two three four five six", 5, 100, "one two three four five…"),
        ("alpha beta gamma delta", 10, 12, "alpha beta…"),
        ("Supercalifragilisticexpialidocious", 10, 10, "Supercali…"),
        ("  spaced \n\t out  ", 5, 30, "spaced out"),
    ],
)
def test_summarize_cuts_at_word_boundaries_within_both_limits(
    text: str, words: int, chars: int, expected: str
) -> None:
    result = html.summarize(text, words, chars)
    assert result == expected
    assert len(result) <= chars


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [
        (b"\xef\xbb\xbf<html>", "iso-8859-1", "utf-8"),  # a BOM beats everything
        (b"<html>", "ISO-8859-1", "cp1252"),  # as browsers do
        (b'<meta charset="windows-1251">', None, "cp1251"),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">', None, "koi8-r"),
        (b'<?xml version="1.0" encoding="shift_jis"?><html>', None, "shift_jis"),
        (b'<meta charset="no-such-charset">', "utf-8", "utf-8"),
        (b"<html>", None, None),
    ],
)
def test_declared_charset_order(body: bytes, header: str | None, expected: str | None) -> None:
    assert html.declared_charset(body, header) == expected


def test_undeclared_charset_is_detected() -> None:
    text = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 5
    assert html.decode_html(f"<p>{text}</p>".encode("cp1251"), None) == f"<p>{text}</p>"


def test_og_beats_twitter_beats_fallbacks_and_urls_are_made_absolute() -> None:
    found = extract("""<head><title>Fallback</title>
        <meta name="twitter:title" content="Twitter"><meta property="og:title" content="OG">
        <meta name="twitter:image" content="../t.png"><meta property="og:url" content="/canon">
        </head>""")
    assert found.fields["og:title"] == "OG"
    assert found.fields["og:url"] == "https://site.test/canon"
    assert found.image_url == "https://site.test/t.png"


def test_fallback_image_skips_data_urls_and_tiny_images() -> None:
    found = extract("""<body><img src="data:image/png;base64,AAAA"><img src="/px.gif" width="1">
        <img src="big.jpg" width="640"></body>""")
    assert found.image_url == "https://site.test/a/big.jpg"


def test_non_http_image_urls_are_ignored() -> None:
    assert extract('<meta property="og:image" content="file:///etc/passwd">').image_url is None
    assert extract('<meta property="og:image" content="javascript:alert(1)">').image_url is None


def test_oembed_link_is_discovered() -> None:
    soup = html.parse_html('<link rel="alternate" type="application/json+oembed" href="/o?u=1">')
    assert html.oembed_link(soup, "https://site.test/x") == "https://site.test/o?u=1"


@pytest.mark.parametrize("markup", ["", "<", "<<<>>>", "\x00\x01\x02", "<html><body><p>" * 500,
                                    "<meta property='og:title' content='unterminated"])
def test_malformed_markup_never_raises(markup: str) -> None:
    assert isinstance(extract(markup).fields, dict)


def test_bundled_oembed_providers_match_their_urls() -> None:
    endpoints = oembed.bundled_endpoints()
    request = oembed.provider_request_url("https://www.youtube.com/watch?v=abc", endpoints)
    assert request is not None
    assert request.host == "www.youtube.com" and request.params["format"] == "json"
    assert request.params["url"] == "https://www.youtube.com/watch?v=abc"
    assert oembed.provider_request_url("https://example.org/watch?v=abc", endpoints) is None


@pytest.mark.parametrize(
    ("answer", "expected_fields", "expected_image"),
    [
        ({"type": "photo", "url": "https://cdn.test/p.jpg", "title": "A photo"},
         {"og:title": "A photo"}, "https://cdn.test/p.jpg"),
        ({"type": "video", "html": "<iframe></iframe><p>Clip</p>", "thumbnail_url": "/t.jpg",
          "provider_name": "Tube"},
         {"og:type": "video.other", "og:description": "Clip", "og:site_name": "Tube"},
         "https://site.test/t.jpg"),
        ({"type": "rich", "html": "<blockquote>Said <b>this</b></blockquote>"},
         {"og:description": "Said this"}, None),
        ({"type": "link", "title": "Just a link"}, {"og:type": "website", "og:title": "Just a link"},
         None),
    ],
)
def test_oembed_types_map_to_og_keys(
    answer: dict[str, str], expected_fields: dict[str, str], expected_image: str | None
) -> None:
    preview = oembed.to_preview(answer, LIMITS, "https://site.test/oembed")
    assert preview is not None
    assert preview.fields == expected_fields
    assert preview.image_url == expected_image


@pytest.mark.parametrize("answer", [None, [], "text", {"no": "type"}])
def test_non_oembed_answers_are_ignored(answer: object) -> None:
    assert oembed.to_preview(answer, LIMITS, "https://site.test/") is None
