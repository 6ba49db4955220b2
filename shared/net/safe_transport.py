"""An httpx transport that only ever connects to addresses an `IpPolicy` allows.

The check sits in the network backend, where httpcore opens sockets, so it runs for every new
connection whatever led to it: the first request, each redirect hop, a retry. The backend
resolves the host itself (through a pluggable `Resolver`), refuses the connection when ANY
resolved address is disallowed (a name answering one public and one private address is refused,
not raced), and connects to the checked address, never to the name, so a second DNS answer
cannot differ from the checked one (DNS rebinding). The URL's host still goes into the Host
header and TLS SNI/certificate checks, because httpcore takes those from the request, not from
the socket.

Usage:

    policy = IpPolicy.from_cidrs(allowed=["0.0.0.0/0"], disallowed=["127.0.0.0/8", ...])
    async with httpx.AsyncClient(transport=SafeTransport(policy), trust_env=False) as client:
        await client.get(url)          # raises AddressBlocked for a disallowed address

Tests inject a `StaticResolver` to make public-looking names resolve to private addresses.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import httpcore
import httpx

from shared.net.ip_policy import IPAddress, IpPolicy, parse_ip_literal


class AddressBlocked(httpx.ConnectError):
    """The host resolved to an address the policy disallows; no connection was made."""

    def __init__(self, host: str, address: IPAddress | None = None) -> None:
        reason = f"resolves to the disallowed address {address}" if address else "does not resolve"
        super().__init__(f"refusing to connect to {host!r}: it {reason}")
        self.host = host
        self.address = address


@runtime_checkable
class Resolver(Protocol):
    """Turns a host name into the addresses to try, in order."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo in a worker thread)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return []
        addresses: list[IPAddress] = []
        for info in infos:
            address = parse_ip_literal(str(info[4][0]))
            if address is not None and address not in addresses:
                addresses.append(address)
        return addresses


class StaticResolver:
    """Fixed answers by name (for tests and pinned hosts); unknown names do not resolve."""

    def __init__(self, answers: Mapping[str, Iterable[str]]) -> None:
        self._answers = {
            name.lower().rstrip("."): [a for a in map(parse_ip_literal, addresses) if a is not None]
            for name, addresses in answers.items()
        }

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        return list(self._answers.get(host.lower().rstrip("."), []))


class SafeNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that resolves, checks every address, then connects to a checked one."""

    def __init__(
        self,
        policy: IpPolicy,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver: Resolver = resolver or SystemResolver()
        self._inner = inner or httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses `host` stands for, all allowed; raises AddressBlocked otherwise."""
        literal = parse_ip_literal(host)
        addresses = [literal] if literal is not None else await self.resolver.resolve(host, port)
        if not addresses:
            raise AddressBlocked(host)
        for address in addresses:
            if not self.policy.is_allowed(address):
                raise AddressBlocked(host, address)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        async with asyncio.timeout(timeout):
            addresses = await self.checked_addresses(host, port)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through a safe transport")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class SafeTransport(httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` whose every connection goes through a `SafeNetworkBackend`.

    Never used with a proxy: a proxy would move the connection (and the check) elsewhere.
    """

    def __init__(
        self,
        policy: IpPolicy,
        resolver: Resolver | None = None,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        http2: bool = False,
    ) -> None:
        # Pass an SSLContext built once (loading CA certificates costs milliseconds) to reuse it.
        ssl_context = (
            verify if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify, trust_env=False)
        )
        super().__init__(verify=ssl_context, trust_env=False, limits=limits, http2=http2)
        self.backend = SafeNetworkBackend(policy, resolver)
        # httpx offers no network_backend argument, so the pool it built is swapped for one with
        # the same settings and our backend (httpcore's public API).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=self.backend,
        )
