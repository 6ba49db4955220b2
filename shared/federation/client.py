"""The outbound federation HTTP client: discovery, X-Matrix signing, deny-listed connections.

Every connection goes through `shared.net.SafeTransport`, which checks the resolved IP against
`federation.deniedNetworks`/`allowedNetworks` when the socket is opened, so neither a server
name, a `.well-known` delegation, an SRV target, a redirect nor a `Location` part can point us at
an internal address. A per-server circuit breaker (shared through the coordinator) stops us from
hammering a server that keeps failing.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from signedjson.key import SigningKey

from shared.config import FederationConfig, TimeoutsConfig
from shared.coordination.base import Coordinator
from shared.federation.discovery import (
    DiscoveryLookups,
    DnsSrvLookup,
    ServerDiscovery,
    ServerTarget,
    WellKnown,
    valid_delegation,
)
from shared.federation.xmatrix import sign_request
from shared.net.ip_policy import IPAddress, IpPolicy, parse_ip_literal
from shared.net.safe_transport import Resolver, SafeTransport, SystemResolver

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 1024 * 1024
MAX_WELL_KNOWN_BYTES = 64 * 1024
MAX_REDIRECTS = 5
CONNECT_TIMEOUT_SECONDS = 15.0
BREAKER_OPEN_SECONDS = 60.0
_MAX_AGE = re.compile(r"max-age\s*=\s*(\d+)", re.IGNORECASE)


class FederationUnavailable(Exception):
    """The remote server could not be reached (connection, TLS, timeout, deny list, breaker)."""


@dataclass(frozen=True)
class Signer:
    """Who our requests come from: a homeserver name and its signing key."""

    origin: str
    key: SigningKey


def _url_host(host: str) -> str:
    """A host as written in a URL (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


class RoutingResolver:
    """Resolves a TLS name to the host discovery chose for it (an SRV target).

    Requests are addressed to `https://<tls name>:<port>` so that SNI, certificate checks and
    connection pooling all follow the name the spec says to verify; this resolver then sends
    the socket where discovery pointed. Everything it returns still meets the IP policy.
    """

    def __init__(self, inner: Resolver) -> None:
        self._inner = inner
        self._routes: dict[tuple[str, int], str] = {}

    def route(self, tls_name: str, port: int, connect_host: str) -> None:
        self._routes[(tls_name.lower(), port)] = connect_host

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        target = self._routes.get((host.lower(), port), host)
        literal = parse_ip_literal(target)
        if literal is not None:
            return [literal]
        return await self._inner.resolve(target, port)


class CircuitBreaker:
    """Opens for a minute after `failures_to_open` consecutive failures of one server.

    State lives in the coordinator's cache, so every process of a cluster sees the same breaker.
    """

    def __init__(self, coordinator: Coordinator, failures_to_open: int) -> None:
        self._coordinator = coordinator
        self._failures_to_open = failures_to_open

    @staticmethod
    def _key(server_name: str) -> str:
        return f"fed:breaker:{server_name}"

    async def _state(self, server_name: str) -> dict[str, Any]:
        raw = await self._coordinator.cache_get(self._key(server_name))
        return json.loads(raw) if raw else {}

    async def check(self, server_name: str) -> None:
        open_until = float((await self._state(server_name)).get("open_until", 0))
        if open_until > time.time():
            raise FederationUnavailable(
                f"{server_name} failed too often recently; not trying again until "
                f"{time.strftime('%H:%M:%S', time.gmtime(open_until))} UTC"
            )

    async def record_success(self, server_name: str) -> None:
        if await self._state(server_name):
            await self._coordinator.cache_delete(self._key(server_name))

    async def record_failure(self, server_name: str) -> None:
        state = await self._state(server_name)
        failures = int(state.get("failures", 0)) + 1
        open_until = time.time() + BREAKER_OPEN_SECONDS if failures >= self._failures_to_open else 0
        if open_until:
            log.warning("circuit breaker for %s open after %d failures", server_name, failures)
        # After the open period one trial request goes through (half-open); failing it re-opens.
        value = json.dumps({"failures": failures, "open_until": open_until}).encode()
        await self._coordinator.cache_set(self._key(server_name), value, 3600)


def tls_context(config: FederationConfig) -> ssl.SSLContext:
    """Verification per `federation.verifyTls`, trusting `federation.caFile` when it is set."""
    if not config.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=config.ca_file)


def ip_policy(config: FederationConfig) -> IpPolicy:
    """Deny wins; an empty `allowedNetworks` allows every address outside the deny list."""
    allowed = config.allowed_networks or ["0.0.0.0/0", "::/0"]
    return IpPolicy.from_cidrs(allowed=allowed, disallowed=config.denied_networks)


class _HttpLookups:
    """Discovery's lookups: `.well-known` over our safe client, SRV through DNS."""

    def __init__(self, http: httpx.AsyncClient, default_cache_seconds: float) -> None:
        self._http = http
        self._default_cache_seconds = default_cache_seconds
        self._srv = DnsSrvLookup()

    async def srv(self, record: str) -> tuple[str, int] | None:
        return await self._srv.srv(record)

    async def well_known(self, hostname: str) -> WellKnown:
        url = f"https://{_url_host(hostname)}/.well-known/matrix/server"
        try:
            async with self._http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code != 200:
                    return WellKnown(None, 0)
                body = await read_limited(response, MAX_WELL_KNOWN_BYTES)
                cache_control = response.headers.get("cache-control", "")
        except (httpx.HTTPError, ValueError) as exc:
            log.info("well-known lookup for %s failed: %s", hostname, exc)
            return WellKnown(None, 0)
        try:
            delegated = valid_delegation(json.loads(body).get("m.server"))
        except (ValueError, AttributeError):
            delegated = None
        if delegated is None:
            return WellKnown(None, 0)
        max_age = _MAX_AGE.search(cache_control)
        seconds = float(max_age.group(1)) if max_age else self._default_cache_seconds
        return WellKnown(delegated, seconds)


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The whole body, or ValueError once it passes `limit` bytes."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise ValueError(f"response body larger than {limit} bytes")
    return bytes(body)


class FederationClient:
    """Requests to other Matrix servers by server name, optionally signed with X-Matrix."""

    def __init__(
        self,
        config: FederationConfig,
        timeouts: TimeoutsConfig,
        coordinator: Coordinator,
        resolver: Resolver | None = None,
        lookups: DiscoveryLookups | None = None,
    ) -> None:
        self._routes = RoutingResolver(resolver or SystemResolver())
        transport = SafeTransport(ip_policy(config), self._routes, verify=tls_context(config))
        timeout = httpx.Timeout(
            timeouts.federation_timeout_seconds,
            connect=min(CONNECT_TIMEOUT_SECONDS, timeouts.federation_timeout_seconds),
        )
        self.http = httpx.AsyncClient(
            transport=transport, timeout=timeout, trust_env=False, max_redirects=MAX_REDIRECTS,
            # identity: media must arrive as stored, and size limits must count real bytes.
            headers={"User-Agent": "mmr (Matrix media repository)", "Accept-Encoding": "identity"},
        )
        self.discovery = ServerDiscovery(
            coordinator, lookups or _HttpLookups(self.http, config.well_known_cache_hours * 3600)
        )
        self.breaker = CircuitBreaker(coordinator, config.backoff_at)

    async def close(self) -> None:
        await self.http.aclose()

    async def _url_for(self, server_name: str, path: str) -> tuple[str, ServerTarget]:
        target = await self.discovery.resolve(server_name)
        if target.connect_host != target.tls_name:
            self._routes.route(target.tls_name, target.port, target.connect_host)
        return f"https://{_url_host(target.tls_name)}:{target.port}{path}", target

    @asynccontextmanager
    async def request(
        self,
        server_name: str,
        path: str,
        *,
        signer: Signer | None = None,
        method: str = "GET",
        json_body: Any = None,
        follow_redirects: bool = False,
    ) -> AsyncIterator[httpx.Response]:
        """Stream a request to `server_name` (`path` includes the query string).

        Raises `FederationUnavailable` when the server cannot be reached; any HTTP answer,
        5xx included, is the caller's to judge (a 5xx counts against the breaker).
        """
        await self.breaker.check(server_name)
        try:
            url, target = await self._url_for(server_name, path)
            headers = {"Host": target.host_header}
            if signer is not None:
                headers["Authorization"] = sign_request(
                    signer.key, signer.origin, server_name, method, path, json_body
                )
            request = self.http.build_request(method, url, headers=headers, json=json_body)
            response = await self.http.send(request, stream=True, follow_redirects=follow_redirects)
        except httpx.HTTPError as exc:
            await self.breaker.record_failure(server_name)
            raise FederationUnavailable(f"{server_name} is unreachable: {exc}") from exc
        try:
            if response.status_code >= 500:
                await self.breaker.record_failure(server_name)
            else:
                await self.breaker.record_success(server_name)
            yield response
        finally:
            await response.aclose()

    async def json_request(
        self, server_name: str, path: str, *, method: str = "GET", json_body: Any = None,
        signer: Signer | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body or None) of a small JSON request."""
        async with self.request(
            server_name, path, signer=signer, method=method, json_body=json_body
        ) as response:
            try:
                body = await read_limited(response, MAX_JSON_BYTES)
            except httpx.HTTPError as exc:
                raise FederationUnavailable(f"{server_name}: reading the answer failed: {exc}") from exc
            except ValueError:
                return response.status_code, None
        try:
            return response.status_code, json.loads(body)
        except ValueError:
            return response.status_code, None

    @asynccontextmanager
    async def get_url(self, url: str) -> AsyncIterator[httpx.Response]:
        """A plain GET of an absolute URL (a `Location` part), redirects followed, IPs checked."""
        if not url.lower().startswith(("https://", "http://")):
            raise FederationUnavailable(f"refusing to follow a non-HTTP location: {url[:100]!r}")
        try:
            request = self.http.build_request("GET", url)
            response = await self.http.send(request, stream=True, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise FederationUnavailable(f"fetching {url[:200]} failed: {exc}") from exc
        try:
            yield response
        finally:
            await response.aclose()
