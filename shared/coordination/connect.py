"""One place that turns the configured Redis URL into a client, for every coordination feature
(locks, caches, pub/sub, rate limits, leases, work-queue streams).

Besides `redis://`, `rediss://` and `unix://` (one server):

* a Sentinel-managed master is
  `redis+sentinel://[:password@]host1:26379,host2:26379/<masterName>[/<db>][?sentinel_password=..]`
  (what `redis.sentinel` in the config becomes). The client asks the sentinels for the current
  master and asks again after a connection fails, so a failover to a replica needs no restart:
  requests during the switch fail open like any Redis outage, then go to the new master.
* a Redis Cluster is `redis+cluster://[:password@]node1:6379,node2:6379` (what `redis.cluster:
  true` makes of `redis.shards` or `redis.url`): any reachable node tells the client the slot
  map; keys spread over the masters by slot. Every mmr operation touches one key, or keys that
  share a hash tag (`{...}`), so none crosses slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379

RedisClient = Redis | RedisCluster
"""What `redis_client` returns; both answer every command mmr sends."""


@dataclass(frozen=True)
class SentinelTarget:
    addresses: list[tuple[str, int]]
    master_name: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None


def _address(text: str, default_port: int = DEFAULT_SENTINEL_PORT) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
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


def cluster_url(addresses: list[str], password: str | None = None) -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"{CLUSTER_SCHEME}://{auth}{','.join(addresses)}"


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], str | None]:
    """(startup nodes, password) of a `redis+cluster://` URL."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise ValueError(f"not a {CLUSTER_SCHEME}:// URL: {url!r}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    password = unquote(credentials.partition(":")[2]) or None if credentials else None
    nodes = [_address(h, DEFAULT_REDIS_PORT) for h in hosts.split(",") if h]
    if not nodes:
        raise ValueError(f"{CLUSTER_SCHEME}:// needs at least one node: {CLUSTER_SCHEME}://host:6379")
    return nodes, password


def redis_client(url: str, **options: Any) -> RedisClient:
    """A client for `url`; `options` are connection options (timeouts, health checks)."""
    if url.startswith(f"{CLUSTER_SCHEME}://"):
        nodes, password = parse_cluster_url(url)
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes],
                            password=password, **options)
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


async def prepare_pubsub(client: RedisClient) -> None:
    """A cluster client's pub/sub picks the node by the channel's slot, from a slot map that only
    a first command loads: load it, or the very first SUBSCRIBE of a process fails."""
    if isinstance(client, RedisCluster):
        await client.initialize()
