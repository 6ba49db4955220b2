"""OpenGraph extraction from an HTML page: og tags, Twitter cards, then plain-HTML fallbacks.

Pure functions over bytes and strings (no I/O), so every rule here is testable on its own.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import charset_normalizer
from bs4 import BeautifulSoup, Comment, Tag

OG_TEXT_KEYS = ("og:title", "og:description", "og:type", "og:url", "og:site_name", "og:locale")
"""The text keys a preview passes on; image keys are set by the pipeline once it has the image."""

TWITTER_TO_OG = {
    "twitter:title": "og:title",
    "twitter:description": "og:description",
    "twitter:image": "og:image",
    "twitter:image:src": "og:image",
}

SNIFF_BYTES = 4096
"""How far into the page a charset declaration is looked for (HTML says 1024; pages are sloppy)."""

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.:-]+)["']""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_WHITESPACE = re.compile(r"\s+")
_SKIPPED_TEXT_PARENTS = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "header", "nav", "footer",
     "aside", "form", "button", "select", "svg", "iframe", "object", "h1", "h2", "h3", "h4",
     "h5", "h6"}
)
MIN_BODY_TEXT_LENGTH = 20
"""A body text fragment shorter than this (a menu item, a button) is not a description."""
MIN_IMAGE_SIDE = 32
"""`<img>` declared smaller than this (spacers, icons, tracking pixels) is not a preview image."""


@dataclass(frozen=True)
class TextLimits:
    """How long titles and descriptions may be (urlPreviews.numTitleWords etc.)."""

    title_words: int
    title_chars: int
    description_words: int
    description_chars: int


_WHATWG_SUPERSETS = {"iso8859-1": "cp1252", "ascii": "cp1252"}
"""Browsers decode pages labelled latin-1 or ASCII as windows-1252 (WHATWG Encoding), and pages
rely on it for curly quotes and the euro sign."""


def _codec(name: str | None) -> str | None:
    """Python's name for a declared charset, or None when it is unknown."""
    if not name:
        return None
    try:
        codec = codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None
    return _WHATWG_SUPERSETS.get(codec, codec)


def declared_charset(body: bytes, header_charset: str | None) -> str | None:
    """The charset a page declares: BOM, HTTP header, `<meta charset>`, then the XML declaration."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    head = body[:SNIFF_BYTES]
    candidates = [header_charset]
    meta = _META_CHARSET.search(head)
    candidates.append(meta.group(1).decode("ascii") if meta else None)
    xml = _XML_ENCODING.search(head)
    candidates.append(xml.group(1).decode("ascii") if xml else None)
    for candidate in candidates:
        codec = _codec(candidate)
        if codec is not None:
            return codec
    return None


def decode_html(body: bytes, header_charset: str | None) -> str:
    """The page as text: declared charset first, else detection, else UTF-8 with replacements."""
    codec = declared_charset(body, header_charset)
    if codec is None:
        best = charset_normalizer.from_bytes(body[: 64 * 1024]).best()
        codec = _codec(best.encoding) if best is not None else None
    # `utf-8-sig` style handling: a BOM must not end up as the first character of the text.
    text = body.decode(codec or "utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def parse_html(text: str) -> BeautifulSoup:
    """lxml is fast and never raises on malformed markup; it just builds what it can."""
    return BeautifulSoup(text, "lxml")


def clean_text(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def summarize(text: str, max_words: int, max_chars: int) -> str:
    """Cut `text` to `max_words` words and `max_chars` characters, at a word boundary, adding '…'.

    A single word longer than `max_chars` is cut mid-word rather than dropped.
    """
    words = clean_text(text).split(" ")
    cut = len(words) > max_words
    words = words[:max_words]
    result = " ".join(words)
    while len(result) > max_chars and len(words) > 1:
        words.pop()
        result = " ".join(words)
        cut = True
    if len(result) > max_chars:
        result, cut = result[:max_chars].rstrip(), True
    if not cut:
        return result
    # The ellipsis must also fit inside the character limit.
    while len(result) + 1 > max_chars and " " in result:
        result = result.rsplit(" ", 1)[0]
    return (result[: max_chars - 1] if len(result) + 1 > max_chars else result) + "…"


def _meta_tags(soup: BeautifulSoup) -> Iterator[tuple[str, str]]:
    for tag in soup.find_all("meta"):
        if not isinstance(tag, Tag):
            continue
        key = tag.get("property") or tag.get("name")
        content = tag.get("content")
        if isinstance(key, str) and isinstance(content, str) and content.strip():
            yield key.strip().lower(), content.strip()


def resolve_http_url(base_url: str, reference: str) -> str | None:
    """`reference` made absolute against `base_url`, if it is an http(s) URL."""
    try:
        absolute = urljoin(base_url, reference.strip())
        scheme = urlsplit(absolute).scheme
    except ValueError:
        return None
    return absolute if scheme in ("http", "https") else None


def _first_heading(soup: BeautifulSoup) -> str | None:
    for name in ("h1", "h2"):
        tag = soup.find(name)
        if isinstance(tag, Tag):
            text = clean_text(tag.get_text(" "))
            if text:
                return text
    return None


def _title(soup: BeautifulSoup) -> str | None:
    title = soup.find("title")
    if isinstance(title, Tag):
        text = clean_text(title.get_text(" "))
        if text:
            return text
    return _first_heading(soup)


def _visible_strings(root: Tag) -> Iterator[str]:
    for string in root.find_all(string=True):
        if isinstance(string, Comment) or any(
            parent.name in _SKIPPED_TEXT_PARENTS for parent in string.parents
        ):
            continue
        text = clean_text(str(string))
        if text:
            yield text


def _body_text(soup: BeautifulSoup, max_chars: int) -> str | None:
    """The page's first meaningful text, about `max_chars` long: paragraphs when the page has
    any (headings and menus are not descriptions), else any visible body text."""
    body = soup.find("body")
    if not isinstance(body, Tag):
        return None
    paragraphs = (clean_text(p.get_text(" ")) for p in body.find_all("p") if isinstance(p, Tag))
    for candidates in (paragraphs, _visible_strings(body)):
        pieces: list[str] = []
        length = 0
        for text in candidates:
            if len(text) < MIN_BODY_TEXT_LENGTH and not pieces:
                continue
            pieces.append(text)
            length += len(text) + 1
            if length > max_chars:
                break
        if pieces:
            return " ".join(pieces)
    return None


def _declared_side(tag: Tag, attribute: str) -> int | None:
    value = tag.get(attribute)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _first_image(soup: BeautifulSoup, base_url: str) -> str | None:
    for tag in soup.find_all("img"):
        if not isinstance(tag, Tag):
            continue
        src = tag.get("src")
        if not isinstance(src, str) or not src.strip() or src.strip().startswith("data:"):
            continue
        sides = [_declared_side(tag, "width"), _declared_side(tag, "height")]
        if any(side is not None and side < MIN_IMAGE_SIDE for side in sides):
            continue
        resolved = resolve_http_url(base_url, src)
        if resolved:
            return resolved
    return None


def oembed_link(soup: BeautifulSoup, base_url: str) -> str | None:
    """The page's `<link rel="alternate" type="application/json+oembed" href>`, made absolute."""
    for tag in soup.find_all("link"):
        if not isinstance(tag, Tag):
            continue
        rel = tag.get("rel")
        rels = rel if isinstance(rel, list) else [rel] if isinstance(rel, str) else []
        kind = tag.get("type")
        href = tag.get("href")
        if ("alternate" in [r.lower() for r in rels] and isinstance(kind, str)
                and kind.strip().lower() == "application/json+oembed" and isinstance(href, str)):
            return resolve_http_url(base_url, href)
    return None


@dataclass
class HtmlPreview:
    """What a page says about itself: text keys (og names) and the image URL to re-host."""

    fields: dict[str, str]
    image_url: str | None


def extract(soup: BeautifulSoup, page_url: str, limits: TextLimits) -> HtmlPreview:
    """og tags first, then Twitter cards, then `<title>`/`<h1>`, meta description or body text,
    and the first suitable `<img>`. URLs come out absolute, text trimmed to `limits`."""
    found: dict[str, str] = {}
    for key, content in _meta_tags(soup):
        if key.startswith("og:"):
            found.setdefault(key, content)
    for key, content in _meta_tags(soup):
        mapped = TWITTER_TO_OG.get(key)
        if mapped:
            found.setdefault(mapped, content)

    fields = {key: found[key] for key in OG_TEXT_KEYS if key in found}
    title = fields.get("og:title") or _title(soup)
    if title:
        fields["og:title"] = summarize(title, limits.title_words, limits.title_chars)
    description = fields.get("og:description") or dict(_meta_tags(soup)).get("description") \
        or _body_text(soup, limits.description_chars)
    if description:
        fields["og:description"] = summarize(
            description, limits.description_words, limits.description_chars
        )
    if "og:url" in fields:
        resolved = resolve_http_url(page_url, fields["og:url"])
        if resolved:
            fields["og:url"] = resolved
        else:
            del fields["og:url"]

    image = found.get("og:image") or found.get("og:image:url") or found.get("og:image:secure_url")
    image_url = resolve_http_url(page_url, image) if image else _first_image(soup, page_url)
    return HtmlPreview(fields=fields, image_url=image_url)
