"""Which URLs may be previewed at all, before any address is looked at.

The IP checks live in `shared.net` (they run at connect time); this is the URL-level gate:
http/https only, a host, and the operator's URL deny list (`urlPreviews.urlDenyList`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import httpx

from shared.matrix.errors import Forbidden, InvalidParam

PREVIEWABLE_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class UrlDenyList:
    """Patterns like Synapse's `url_preview_url_blacklist`, as strings.

    * `^...`: a regular expression searched in the whole URL.
    * with `://`: a glob over the whole URL (`https://*.example.com/private/*`).
    * otherwise: a glob over the host name (`*.example.com`, `internal.test`).
    """

    url_globs: tuple[str, ...]
    host_globs: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> UrlDenyList:
        url_globs: list[str] = []
        host_globs: list[str] = []
        regexes: list[re.Pattern[str]] = []
        for pattern in patterns:
            if pattern.startswith("^"):
                try:
                    regexes.append(re.compile(pattern))
                except re.error as exc:
                    raise ValueError(f"urlPreviews.urlDenyList: bad regex {pattern!r}: {exc}") from exc
            elif "://" in pattern:
                url_globs.append(pattern)
            else:
                host_globs.append(pattern.lower())
        return cls(tuple(url_globs), tuple(host_globs), tuple(regexes))

    def denies(self, url: httpx.URL) -> bool:
        text = str(url)
        return (
            any(fnmatch.fnmatchcase(text, glob) for glob in self.url_globs)
            or any(fnmatch.fnmatchcase(url.host, glob) for glob in self.host_globs)
            or any(regex.search(text) for regex in self.regexes)
        )


def parse_preview_url(raw: str) -> httpx.URL:
    """The URL a client asked for, normalised, or InvalidParam.

    The fragment is never sent, and userinfo is dropped so that credentials in a URL someone
    pasted are not sent on (httpx would turn them into an Authorization header).
    """
    try:
        url = httpx.URL(raw.strip())
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidParam(f"Not a valid URL: {exc}") from exc
    if url.scheme not in PREVIEWABLE_SCHEMES:
        raise InvalidParam("Only http and https URLs can be previewed")
    if not url.host:
        raise InvalidParam("The URL has no host")
    return url.copy_with(userinfo=b"", fragment=None)


DEFAULT_PORTS = {"http": 80, "https": 443}


def check_allowed(url: httpx.URL, deny_list: UrlDenyList, allowed_ports: Collection[int] = ()) -> None:
    """Refuse a URL (the requested one or any redirect hop) the rules above rule out.

    `allowed_ports` (urlPreviews.allowedPorts) limits the ports when not empty.
    """
    if url.scheme not in PREVIEWABLE_SCHEMES or not url.host:
        raise Forbidden("The URL redirects to a location that cannot be previewed")
    if allowed_ports and (url.port or DEFAULT_PORTS[url.scheme]) not in allowed_ports:
        raise Forbidden("Previews from this port are not allowed")
    if deny_list.denies(url):
        raise Forbidden("Previews of this URL are not allowed")
