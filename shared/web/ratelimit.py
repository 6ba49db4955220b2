"""Request rate limits as FastAPI dependencies, shared by every process through the coordinator.

Per client IP (`rateLimit.requestsPerSecond` / `burst`) and per user (e.g. uploads), both token
buckets, and per client IP on bytes downloaded (`rateLimit.buckets.downloads`, a leaky bucket):
all in Redis in a cluster (one budget whatever process a request lands on) and in
memory in the embedded default; an unreachable Redis lets requests through (the coordinator
fails open and logs a warning).

The client IP is the TCP peer, unless the peer is a trusted proxy (`repo.trustedProxies`, CIDRs)
or `repo.trustAnyForwardedAddress` is on: only then is `X-Forwarded-For` believed, since any
client can send that header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache

from fastapi import Request

from shared.auth.users import UserInfo
from shared.config import MmrConfig, RepoConfig
from shared.matrix.errors import GuestAccessForbidden, LimitExceeded
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.web.deps import RuntimeDep, UserDep

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _parse_ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _is_trusted(ip: IpAddress | None, networks: Sequence[IpNetwork]) -> bool:
    return ip is not None and any(ip in network for network in networks)


def _forwarded_chain(headers: Sequence[str]) -> list[IpAddress]:
    """The valid addresses of every `X-Forwarded-For` header, in order (client first)."""
    chain = []
    for header in headers:
        for part in header.split(","):
            ip = _parse_ip(part)
            if ip is not None:
                chain.append(ip)
    return chain


def trusts_peer(peer: str | None, repo: RepoConfig) -> bool:
    """Whether the X-Forwarded-* headers of a request from `peer` are the operator's proxy's."""
    return repo.trust_any_forwarded_address or _is_trusted(_parse_ip(peer or ""),
                                                           _networks(tuple(repo.trusted_proxies)))


def client_ip(peer: str | None, forwarded_for: Sequence[str], repo: RepoConfig) -> str:
    """The address a request is limited and logged under.

    With trusted proxies, walk the chain from the nearest hop back and take the first address
    that is not a trusted proxy: entries left of it could have been written by the client.
    """
    peer_ip = _parse_ip(peer or "")
    networks = _networks(tuple(repo.trusted_proxies))
    trusted_peer = trusts_peer(peer, repo)
    if not forwarded_for or not trusted_peer:
        return str(peer_ip) if peer_ip is not None else (peer or "unknown")
    chain = _forwarded_chain(forwarded_for)
    if not chain:
        return str(peer_ip) if peer_ip is not None else (peer or "unknown")
    if repo.trust_any_forwarded_address:
        return str(chain[0])
    for hop in reversed(chain):
        if not _is_trusted(hop, networks):
            return str(hop)
    return str(chain[0])


def request_client_ip(request: Request, config: MmrConfig) -> str:
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.getlist("x-forwarded-for"), config.repo)


async def enforce_rate_limit(
    runtime: Runtime, key: str, rate_per_second: float, burst: int, what: str
) -> None:
    """Take a token from bucket `key`; 429 `M_LIMIT_EXCEEDED` with Retry-After when empty."""
    wait = await runtime.coordinator.rate_limit(key, rate_per_second, burst)
    if wait is not None:
        metrics.rate_limited(runtime, what)
        raise LimitExceeded(wait, f"Too many {what}; try again later")


async def charge_download(request: Request, runtime: Runtime, size_bytes: int) -> None:
    """Pour the bytes about to be sent into the client IP's download bucket
    (`rateLimit.buckets.downloads`, matrix-media-repo's leaky bucket); 429 `M_LIMIT_EXCEEDED`
    with Retry-After when they would overflow it.

    Call once the answer's size is known and before any byte is streamed, on client routes only:
    servers fetching over federation are not charged.
    """
    limits = runtime.config.rate_limit
    if not limits.enabled or size_bytes <= 0:
        return
    bucket = limits.buckets.downloads
    wait = await runtime.coordinator.leaky_bucket(
        f"download:{request_client_ip(request, runtime.config)}", size_bytes,
        bucket.capacity_bytes, bucket.drain_bytes_per_minute / 60, bucket.overflow_limit_bytes,
    )
    if wait is not None:
        metrics.rate_limited(runtime, "downloads")
        raise LimitExceeded(wait, "Too many bytes downloaded; try again later")


async def limit_by_ip(request: Request, runtime: RuntimeDep) -> None:
    """Per-client-IP request limit (`rateLimit`); add as a route or router dependency."""
    limits = runtime.config.rate_limit
    if not limits.enabled:
        return
    ip = request_client_ip(request, runtime.config)
    await enforce_rate_limit(
        runtime, f"ip:{ip}", limits.requests_per_second, limits.burst, "requests"
    )


UserRate = Callable[[MmrConfig, UserInfo], tuple[float, int]]
"""(rate per second, burst) for a user; a rate of 0 means unlimited."""


def limit_by_user(
    bucket: str, rate_for: UserRate, allow_guests: bool = True
) -> Callable[..., Awaitable[UserInfo]]:
    """A dependency that authenticates the user, charges their `bucket` and returns the user.

    Use it in place of `UserDep` on the routes it limits. With `allow_guests=False` a guest
    gets 403 `M_GUEST_ACCESS_FORBIDDEN` (before being charged).
    """

    async def dependency(runtime: RuntimeDep, user: UserDep) -> UserInfo:
        if user.is_guest and not allow_guests:
            raise GuestAccessForbidden()
        rate, burst = rate_for(runtime.config, user)
        if rate > 0:
            key = f"user:{bucket}:{user.user_id}"
            await enforce_rate_limit(runtime, key, rate, burst, bucket)
        return user

    return dependency

