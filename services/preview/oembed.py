"""oEmbed: which URLs have a provider endpoint, and how an oEmbed answer maps to og keys.

The bundled list (`oembed_providers.json`, in oembed.com's `providers.json` format, trimmed to
widely linked sites) is matched first; pages can also point at their own endpoint with
`<link rel="alternate" type="application/json+oembed">` (discovered in `html.oembed_link`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import httpx

from services.preview.html import TextLimits, clean_text, parse_html, resolve_http_url, summarize

PROVIDERS_FILE = "oembed_providers.json"


@dataclass(frozen=True)
class OEmbedEndpoint:
    url: str
    schemes: tuple[re.Pattern[str], ...]


def _scheme_pattern(scheme: str) -> re.Pattern[str]:
    """oEmbed schemes are globs where `*` matches anything; http and https are treated alike."""
    glob = re.escape(scheme).replace(r"\*", ".*")
    glob = re.sub(r"^https?", "https?", glob)
    return re.compile(glob, re.IGNORECASE)


def parse_providers(data: list[dict[str, Any]]) -> tuple[OEmbedEndpoint, ...]:
    endpoints = []
    for provider in data:
        for endpoint in provider.get("endpoints", []):
            schemes = tuple(_scheme_pattern(s) for s in endpoint.get("schemes", []))
            if schemes and endpoint.get("url"):
                endpoints.append(OEmbedEndpoint(endpoint["url"], schemes))
    return tuple(endpoints)


@cache
def bundled_endpoints() -> tuple[OEmbedEndpoint, ...]:
    text = resources.files("services.preview").joinpath(PROVIDERS_FILE).read_text("utf-8")
    return parse_providers(json.loads(text))


def endpoint_request_url(endpoint_url: str, page_url: str) -> httpx.URL:
    """The oEmbed request for `page_url`: `url` and `format=json` added to the endpoint."""
    endpoint = httpx.URL(endpoint_url.replace("{format}", "json"))
    return endpoint.copy_merge_params({"url": page_url, "format": "json"})


def provider_request_url(page_url: str, endpoints: tuple[OEmbedEndpoint, ...]) -> httpx.URL | None:
    """The oEmbed request for `page_url` if a known provider covers it."""
    for endpoint in endpoints:
        if any(scheme.fullmatch(page_url) for scheme in endpoint.schemes):
            return endpoint_request_url(endpoint.url, page_url)
    return None


@dataclass
class OEmbedPreview:
    fields: dict[str, str]
    image_url: str | None


def _text(value: object) -> str | None:
    return clean_text(value) if isinstance(value, str) and value.strip() else None


def _html_text(html: object) -> str | None:
    if not isinstance(html, str) or not html.strip():
        return None
    return _text(parse_html(html).get_text(" "))


def to_preview(answer: object, limits: TextLimits, base_url: str) -> OEmbedPreview | None:
    """Map an oEmbed JSON answer to og keys (None when it is not an oEmbed object).

    photo: the photo is the image; video/rich: the embed HTML's text is the description and the
    thumbnail the image (video also gets og:type `video.other`); link: og:type `website`.
    A relative image URL is resolved against `base_url` (where the answer came from).
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("type"), str):
        return None
    kind = answer["type"].lower()
    fields: dict[str, str] = {}
    title = _text(answer.get("title"))
    if title:
        fields["og:title"] = summarize(title, limits.title_words, limits.title_chars)
    site_name = _text(answer.get("provider_name"))
    if site_name:
        fields["og:site_name"] = site_name
    image = _text(answer.get("thumbnail_url"))
    if kind == "photo":
        image = _text(answer.get("url")) or image
    elif kind in ("video", "rich"):
        description = _html_text(answer.get("html"))
        if description:
            fields["og:description"] = summarize(
                description, limits.description_words, limits.description_chars
            )
        if kind == "video":
            fields["og:type"] = "video.other"
    elif kind == "link":
        fields["og:type"] = "website"
    return OEmbedPreview(fields=fields, image_url=resolve_http_url(base_url, image) if image else None)
