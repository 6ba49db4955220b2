"""Server-name resolution, step by step as the spec lists it (pure logic over scripted lookups),
and the cache/backoff around it on the in-process coordinator."""

from __future__ import annotations

import pytest

from shared.coordination.inprocess import InProcessCoordinator
from shared.federation.discovery import (
    ServerDiscovery,
    ServerTarget,
    WellKnown,
    resolve_server_name,
    split_server_name,
)


class ScriptedLookups:
    """Answers given per test; records what was asked."""

    def __init__(self, well_known: dict[str, str] | None = None,
                 srv: dict[str, tuple[str, int]] | None = None, cache_seconds: float = 3600) -> None:
        self.well_known_answers = well_known or {}
        self.srv_answers = srv or {}
        self.cache_seconds = cache_seconds
        self.asked: list[str] = []

    async def well_known(self, hostname: str) -> WellKnown:
        self.asked.append(f"well-known {hostname}")
        delegated = self.well_known_answers.get(hostname)
        return WellKnown(delegated, self.cache_seconds if delegated else 0)

    async def srv(self, record: str) -> tuple[str, int] | None:
        self.asked.append(f"srv {record}")
        return self.srv_answers.get(record)


@pytest.mark.parametrize(("name", "expected"), [
    ("1.2.3.4", ServerTarget("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
    ("1.2.3.4:99", ServerTarget("1.2.3.4", 99, "1.2.3.4:99", "1.2.3.4")),
    ("[2001:db8::1]", ServerTarget("2001:db8::1", 8448, "[2001:db8::1]", "2001:db8::1")),
    ("[2001:db8::1]:99", ServerTarget("2001:db8::1", 99, "[2001:db8::1]:99", "2001:db8::1")),
    ("example.org:1234", ServerTarget("example.org", 1234, "example.org:1234", "example.org")),
])
async def test_ip_literals_and_explicit_ports_need_no_lookup(name: str, expected: ServerTarget) -> None:
    lookups = ScriptedLookups()
    target, cache = await resolve_server_name(name, lookups)
    assert target == expected
    assert cache is None
    assert lookups.asked == []


async def test_well_known_delegation_to_a_name_with_a_port() -> None:
    lookups = ScriptedLookups(well_known={"example.org": "matrix.example.org:443"})
    target, cache = await resolve_server_name("example.org", lookups)
    assert target == ServerTarget("matrix.example.org", 443, "matrix.example.org:443",
                                  "matrix.example.org")
    assert cache == 3600


async def test_well_known_delegation_to_an_ip_literal() -> None:
    lookups = ScriptedLookups(well_known={"example.org": "5.6.7.8"})
    target, _ = await resolve_server_name("example.org", lookups)
    assert target == ServerTarget("5.6.7.8", 8448, "5.6.7.8", "5.6.7.8")


async def test_well_known_delegation_without_port_uses_srv_of_the_delegated_name() -> None:
    lookups = ScriptedLookups(well_known={"example.org": "hs.example.net"},
                              srv={"_matrix-fed._tcp.hs.example.net": ("fed.example.net", 8000)})
    target, _ = await resolve_server_name("example.org", lookups)
    # Host and certificate name stay the delegated name, never the SRV target.
    assert target == ServerTarget("fed.example.net", 8000, "hs.example.net", "hs.example.net")


async def test_the_deprecated_srv_record_is_the_second_choice() -> None:
    lookups = ScriptedLookups(srv={"_matrix._tcp.example.org": ("old.example.org", 8449)})
    target, cache = await resolve_server_name("example.org", lookups)
    assert target == ServerTarget("old.example.org", 8449, "example.org", "example.org")
    assert cache == 0
    assert lookups.asked == ["well-known example.org", "srv _matrix-fed._tcp.example.org",
                             "srv _matrix._tcp.example.org"]


async def test_without_well_known_or_srv_it_is_port_8448() -> None:
    target, _ = await resolve_server_name("example.org", ScriptedLookups())
    assert target == ServerTarget("example.org", 8448, "example.org", "example.org")


def test_server_names_split_into_host_and_port() -> None:
    assert split_server_name("example.org") == ("example.org", None)
    assert split_server_name("example.org:8448") == ("example.org", 8448)
    assert split_server_name("[::1]:80") == ("::1", 80)
    assert split_server_name("[::1]") == ("::1", None)


async def test_answers_are_cached_and_failures_back_off() -> None:
    coordinator = InProcessCoordinator()
    delegated = ScriptedLookups(well_known={"good.example": "hs.good.example:443"})
    discovery = ServerDiscovery(coordinator, delegated)
    for _ in range(3):
        assert (await discovery.resolve("good.example")).port == 443
    assert delegated.asked == ["well-known good.example"]

    broken = ScriptedLookups()
    discovery = ServerDiscovery(coordinator, broken)
    await discovery.resolve("broken.example")
    await discovery.resolve("broken.example")
    assert broken.asked.count("well-known broken.example") == 1
    failures = await coordinator.cache_get("fed:discovery-failures:broken.example")
    assert failures == b"1"
    await coordinator.close()


async def test_the_cache_time_is_bounded_to_48_hours() -> None:
    coordinator = InProcessCoordinator()
    lookups = ScriptedLookups(well_known={"long.example": "hs.long.example:443"},
                              cache_seconds=10 * 24 * 3600)
    discovery = ServerDiscovery(coordinator, lookups)
    assert await discovery._cache_time("long.example", 10 * 24 * 3600) == 48 * 3600
    assert await discovery._cache_time("x.example", 0) == 60
    assert await discovery._cache_time("x.example", 0) == 120
    await coordinator.close()
