"""One place that turns the configured Redis URL into a client, for every coordination feature
(locks, caches, pub/sub, rate limits, leases, work-queue streams).

Besides `redis://`, `rediss://` and `unix://` (one server), a Sentinel-managed master is named
`redis+sentinel://[:password@]host1:26379,host2:26379/<masterName>[/<db>][?sentinel_password=..]`
(what `redis.sentinel` in the config becomes). The client asks the sentinels for the current
master and asks again after a connection fails, so a failover to a replica needs no restart:
requests during the switch fail open like any Redis outage, then go to the new master.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    addresses: list[tuple[str, int]]
    master_name: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, DEFAULT_SENTINEL_PORT
    if not port.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    return host.strip("[]"), int(port)


def parse_sentinel_url(url: str) -> SentinelTarget:
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL: {url!r}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    password = unquote(credentials.partition(":")[2]) or None if credentials else None
    addresses = [_address(h) for h in hosts.split(",") if h]
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not addresses or not path:
        raise ValueError(f"{SENTINEL_SCHEME}:// needs sentinel addresses and a master name: "
                         f"{SENTINEL_SCHEME}://host:26379,host2:26379/mymaster/0")
    db = int(path[1]) if len(path) > 1 else 0
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[0]
    return SentinelTarget(addresses, path[0], db, password, sentinel_password)


def sentinel_url(addresses: list[str], master_name: str, db: int = 0, password: str | None = None,
                 sentinel_password: str | None = None) -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    query = f"?sentinel_password={quote(sentinel_password, safe='')}" if sentinel_password else ""
    return f"{SENTINEL_SCHEME}://{auth}{','.join(addresses)}/{quote(master_name, safe='')}/{db}{query}"


def redis_client(url: str, **options: Any) -> Redis:
    """A client for `url`; `options` are connection options (timeouts, health checks)."""
    if not url.startswith(f"{SENTINEL_SCHEME}://"):
        return Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinel_options = {key: value for key, value in options.items()
                        if key in ("socket_timeout", "socket_connect_timeout")}
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    sentinel = Sentinel(target.addresses, sentinel_kwargs=sentinel_options)
    client: Redis = sentinel.master_for(target.master_name, db=target.db, password=target.password,
                                        **options)
    return client
