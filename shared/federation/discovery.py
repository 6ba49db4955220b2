"""Server-name resolution as the spec's server-server API defines it ("Resolving server names").

`resolve_server_name` is the algorithm, over two injected lookups (the `.well-known` fetch and
SRV records) so it can be read and tested on its own; `ServerDiscovery` adds the cluster-wide
cache (the coordinator's, so Redis in a cluster) and the well-known error backoff.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
from dataclasses import asdict, dataclass
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.rdtypes.IN.SRV

from shared.coordination.base import Coordinator
from shared.ids.media_id import is_valid_server_name

log = logging.getLogger(__name__)

DEFAULT_PORT = 8448
MAX_WELL_KNOWN_CACHE_SECONDS = 48 * 3600
FIRST_FAILURE_BACKOFF_SECONDS = 60.0
MAX_FAILURE_BACKOFF_SECONDS = 3600.0
FAILURE_COUNT_TTL_SECONDS = 6 * 3600


@dataclass(frozen=True)
class ServerTarget:
    """Where to reach a server: open a socket to `connect_host:port`, send `Host: host_header`,
    and check the certificate against `tls_name` (an IP literal for IP server names)."""

    connect_host: str
    port: int
    host_header: str
    tls_name: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> ServerTarget:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class WellKnown:
    """The outcome of a `.well-known/matrix/server` fetch: a delegated name, or None on error."""

    delegated: str | None
    cache_seconds: float


class DiscoveryLookups(Protocol):
    async def well_known(self, hostname: str) -> WellKnown: ...

    async def srv(self, record: str) -> tuple[str, int] | None:
        """The chosen `(target, port)` of an SRV record, or None when there is none."""
        ...


def split_server_name(name: str) -> tuple[str, int | None]:
    """`host[:port]` into its parts; an IPv6 host keeps no brackets."""
    if name.startswith("["):
        host, _, rest = name[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, sep, port = name.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return name, None


async def _srv_or_default(hostname: str, lookups: DiscoveryLookups) -> ServerTarget:
    """SRV `_matrix-fed._tcp`, then the deprecated `_matrix._tcp`, then port 8448.

    Host and TLS name stay `hostname`, never the SRV target.
    """
    for service in ("_matrix-fed._tcp", "_matrix._tcp"):
        found = await lookups.srv(f"{service}.{hostname}")
        if found is not None:
            target, port = found
            return ServerTarget(target, port, hostname, hostname)
    return ServerTarget(hostname, DEFAULT_PORT, hostname, hostname)


def _literal_or_explicit_port(name: str) -> ServerTarget | None:
    """Steps 1 and 2: an IP literal, or a hostname with an explicit port, needs no lookup."""
    host, port = split_server_name(name)
    if _is_ip_literal(host):
        return ServerTarget(host, port or DEFAULT_PORT, name, host)
    if port is not None:
        return ServerTarget(host, port, name, host)
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve_server_name(
    server_name: str, lookups: DiscoveryLookups
) -> tuple[ServerTarget, float | None]:
    """The target for `server_name` and how long the answer may be cached (None: not worth it).

    A failed well-known lookup gives a cache time of 0 here; `ServerDiscovery` applies backoff.
    """
    direct = _literal_or_explicit_port(server_name)
    if direct is not None:
        return direct, None
    hostname, _ = split_server_name(server_name)
    well_known = await lookups.well_known(hostname)
    if well_known.delegated is None:
        return await _srv_or_default(hostname, lookups), 0.0
    delegated = well_known.delegated
    direct = _literal_or_explicit_port(delegated)
    if direct is not None:
        return direct, well_known.cache_seconds
    return await _srv_or_default(delegated, lookups), well_known.cache_seconds


class DnsSrvLookup:
    """SRV records through dnspython, choosing by priority then weight (RFC 2782)."""

    def __init__(self, resolver: dns.asyncresolver.Resolver | None = None) -> None:
        self._resolver = resolver or dns.asyncresolver.Resolver()

    async def srv(self, record: str) -> tuple[str, int] | None:
        try:
            answer = await self._resolver.resolve(record, "SRV")
        except dns.exception.DNSException:
            return None
        records = [r for r in answer if isinstance(r, dns.rdtypes.IN.SRV.SRV)]
        usable = [r for r in records if str(r.target) not in (".", "")]
        if not usable:
            return None
        best = min(r.priority for r in usable)
        candidates = [r for r in usable if r.priority == best]
        weights = [r.weight + 1 for r in candidates]
        chosen = random.choices(candidates, weights=weights)[0]
        return str(chosen.target).rstrip("."), int(chosen.port)


def valid_delegation(value: object) -> str | None:
    """The `m.server` value when it is a valid server name, else None."""
    if isinstance(value, str) and is_valid_server_name(value):
        return value
    return None


class ServerDiscovery:
    """`resolve_server_name` with answers shared through the coordinator's cache.

    A well-known answer is cached as long as its Cache-Control allows (bounded to 48 h); when the
    well-known lookup fails, the fallback answer is cached for a backoff that doubles with each
    consecutive failure, from a minute up to an hour, so a broken host is not asked every time.
    """

    def __init__(self, coordinator: Coordinator, lookups: DiscoveryLookups) -> None:
        self._coordinator = coordinator
        self._lookups = lookups

    async def resolve(self, server_name: str) -> ServerTarget:
        direct = _literal_or_explicit_port(server_name)
        if direct is not None:
            return direct
        key = f"fed:discovery:{server_name}"
        cached = await self._coordinator.cache_get(key)
        if cached is not None:
            return ServerTarget.from_json(cached)
        target, cache_seconds = await resolve_server_name(server_name, self._lookups)
        ttl = await self._cache_time(server_name, cache_seconds)
        if ttl > 0:
            await self._coordinator.cache_set(key, target.to_json().encode(), ttl)
        return target

    async def _cache_time(self, server_name: str, cache_seconds: float | None) -> float:
        failures_key = f"fed:discovery-failures:{server_name}"
        if cache_seconds is None:
            return 0.0
        if cache_seconds > 0:
            await self._coordinator.cache_delete(failures_key)
            return min(cache_seconds, MAX_WELL_KNOWN_CACHE_SECONDS)
        raw = await self._coordinator.cache_get(failures_key)
        failures = int(raw) + 1 if raw else 1
        await self._coordinator.cache_set(
            failures_key, str(failures).encode(), FAILURE_COUNT_TTL_SECONDS
        )
        backoff = FIRST_FAILURE_BACKOFF_SECONDS * 2 ** (failures - 1)
        log.info("no usable .well-known for %s (failure %d)", server_name, failures)
        return min(backoff, MAX_FAILURE_BACKOFF_SECONDS)
