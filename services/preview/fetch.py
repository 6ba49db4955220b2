"""Fetching for previews: an SSRF-safe client, redirects checked hop by hop, capped bodies.

Every connection goes through `shared.net.SafeTransport`, so an address is checked when the
socket is opened, whatever URL led there. Redirects are followed here (not by httpx) so each hop
also meets the URL-level rules of `safety.check_allowed` and the hop limit.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from services.preview.safety import UrlDenyList, check_allowed
from shared.config import MmrConfig
from shared.matrix.errors import Forbidden, MatrixError, NotFound, TooLarge, UpstreamError
from shared.net.ip_policy import IpPolicy
from shared.net.safe_transport import AddressBlocked, Resolver, SafeTransport
from shared.runtime import Runtime
from shared.storage.spool import SpooledFile, SpoolTooLarge, spool_to_temp

RESOLVER_EXTRA = "preview.resolver"
"""`Runtime.extras` key of a `shared.net` Resolver to use instead of the system's (tests)."""
_NET_EXTRA = "preview.net"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HTML_TYPES = ("text/html", "application/xhtml+xml")
JSON_TYPES = ("application/json", "text/json", "text/javascript")
HTML_ACCEPT = "text/html,application/xhtml+xml;q=0.9,image/*;q=0.8,*/*;q=0.5"


@dataclass(frozen=True)
class FetchSettings:
    """Everything one preview's requests need, read once from the config."""

    policy: IpPolicy
    deny_list: UrlDenyList
    allowed_ports: frozenset[int]
    verify: ssl.SSLContext
    user_agent: str
    max_bytes: int
    max_redirects: int
    timeout_seconds: float
    file_preview_types: tuple[str, ...]


def settings_for(rt: Runtime) -> FetchSettings:
    """Built once per runtime: parsing networks and loading CA certificates is not free."""
    cached = rt.extras.get(_NET_EXTRA)
    if isinstance(cached, FetchSettings):
        return cached
    settings = build_settings(rt.config)
    rt.extras[_NET_EXTRA] = settings
    return settings


def build_settings(config: MmrConfig) -> FetchSettings:
    previews = config.url_previews
    verify = httpx.create_ssl_context(verify=not previews.preview_unsafe_certificates,
                                      trust_env=False)
    return FetchSettings(
        policy=IpPolicy.from_cidrs(previews.allowed_networks, previews.disallowed_networks),
        deny_list=UrlDenyList.from_patterns(previews.url_deny_list),
        allowed_ports=frozenset(previews.allowed_ports),
        verify=verify,
        user_agent=previews.user_agent,
        max_bytes=previews.max_page_size_bytes,
        max_redirects=previews.max_redirects,
        timeout_seconds=config.timeouts.url_preview_timeout_seconds,
        file_preview_types=tuple(previews.file_preview_types),
    )


def make_client(rt: Runtime, settings: FetchSettings, language: str) -> httpx.AsyncClient:
    """A client for one preview. Not pooled across previews: nothing to reuse between sites,
    and a short-lived client cannot carry a connection from one user's preview to another's."""
    resolver = rt.extras.get(RESOLVER_EXTRA)
    transport = SafeTransport(
        settings.policy,
        resolver if isinstance(resolver, Resolver) else None,
        verify=settings.verify,
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
    )
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(settings.timeout_seconds),
        headers={"User-Agent": settings.user_agent, "Accept-Language": language},
    )


def media_type(response: httpx.Response) -> str:
    """`type/subtype` of the response, lower case, without parameters ('' when absent)."""
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def header_charset(response: httpx.Response) -> str | None:
    for parameter in response.headers.get("content-type", "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def is_file_preview_type(content_type: str, settings: FetchSettings) -> bool:
    return any(fnmatch.fnmatchcase(content_type, pattern) for pattern in settings.file_preview_types)


def _translate(exc: Exception) -> MatrixError:
    """The Matrix error a failed fetch becomes (cached like a preview, so it must be stable)."""
    if isinstance(exc, AddressBlocked):
        # One message for "blocked" and "does not resolve": which names resolve to internal
        # addresses is none of the requester's business.
        return Forbidden("Cannot preview this URL: its host is not allowed or does not resolve")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return UpstreamError("Timed out fetching the URL")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return Forbidden("The URL redirects to a location that cannot be previewed")
    return UpstreamError("Could not fetch the URL")


@asynccontextmanager
async def open_url(
    client: httpx.AsyncClient, url: httpx.URL, settings: FetchSettings, accept: str
) -> AsyncIterator[httpx.Response]:
    """GET `url`, following redirects (each hop checked), and yield the final response with its
    body not yet read. Non-2xx final answers become Matrix errors."""
    response = await _follow_redirects(client, url, settings, accept)
    try:
        if response.status_code == 404 or response.status_code == 410:
            raise NotFound("The URL was not found")
        if not 200 <= response.status_code < 300:
            raise UpstreamError(f"The URL answered HTTP {response.status_code}")
        yield response
    finally:
        await response.aclose()


async def _follow_redirects(
    client: httpx.AsyncClient, url: httpx.URL, settings: FetchSettings, accept: str
) -> httpx.Response:
    for _ in range(settings.max_redirects + 1):
        check_allowed(url, settings.deny_list, settings.allowed_ports)
        request = client.build_request("GET", url, headers={"Accept": accept})
        try:
            response = await client.send(request, stream=True)
        except (httpx.HTTPError, OSError) as exc:
            raise _translate(exc) from exc
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response
        await response.aclose()
        try:
            url = url.join(location).copy_with(fragment=None)
        except (httpx.InvalidURL, ValueError) as exc:
            raise UpstreamError("The URL redirects to an invalid location") from exc
    raise UpstreamError(f"The URL redirects more than {settings.max_redirects} times")


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"The content is larger than the limit of {max_bytes} bytes", status=502)


def refuse_declared_too_large(response: httpx.Response, max_bytes: int) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The whole body, refusing it once more than `max_bytes` arrive (never holding more)."""
    refuse_declared_too_large(response, max_bytes)
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise _too_large(max_bytes)
    except httpx.HTTPError as exc:
        raise _translate(exc) from exc
    return bytes(body)


async def spool_capped(rt: Runtime, response: httpx.Response, max_bytes: int) -> SpooledFile:
    """Stream the body to a temp file (hashing it), refusing it past `max_bytes`."""
    refuse_declared_too_large(response, max_bytes)
    try:
        return await spool_to_temp(response.aiter_bytes(), rt.temp_dir, max_bytes, rt.temp_tag)
    except SpoolTooLarge as exc:
        raise _too_large(max_bytes) from exc
    except httpx.HTTPError as exc:
        raise _translate(exc) from exc


def deadline(settings: FetchSettings) -> asyncio.Timeout:
    """A whole-fetch deadline: httpx's timeouts are per read, so a server dripping one byte at a
    time would otherwise hold a worker forever."""
    return asyncio.timeout(settings.timeout_seconds)
