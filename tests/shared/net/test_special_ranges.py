"""Both default deny lists walk the IANA special-purpose registries, range by range.

The tables below are the specification, written out here independently of
`shared/net/special_ranges.py`: every range of the IANA IPv4 and IPv6 Special-Purpose Address
Registries plus Synapse's default deny list (a floor). For each range the first, a middle and the
last address must be refused by `urlPreviews.disallowedNetworks` and by
`federation.deniedNetworks`, and so must each IPv4 special range wrapped in every IPv6 form that
carries an IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from shared.config import FederationConfig, UrlPreviewsConfig
from shared.federation.client import ip_policy
from shared.net.ip_policy import IpPolicy

IANA_IPV4 = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.0.0/29", "192.0.0.8/32", "192.0.0.9/32", "192.0.0.10/32",
    "192.0.0.170/32", "192.0.0.171/32", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24",
    "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
]
IANA_IPV6 = [
    "::1/128", "::/128", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64", "2001::/23", "2001::/32",
    "2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:2::/48", "2001:3::/32",
    "2001:4:112::/48", "2001:10::/28", "2001:20::/28", "2001:30::/28", "2001:db8::/32",
    "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10",
]
SYNAPSE_FLOOR = [
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
    "192.0.0.0/24", "169.254.0.0/16", "192.88.99.0/24", "198.18.0.0/15", "192.0.2.0/24",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "::1/128", "fe80::/10", "fc00::/7",
    "2001:db8::/32", "ff00::/8", "fec0::/10",
]

PREVIEWS = UrlPreviewsConfig()
POLICIES = {
    "urlPreviews": IpPolicy.from_cidrs(PREVIEWS.allowed_networks, PREVIEWS.disallowed_networks),
    "federation": ip_policy(FederationConfig()),
}

Wrap = Callable[[ipaddress.IPv4Address], ipaddress.IPv6Address]
WRAPPERS: dict[str, Wrap] = {
    "IPv4-mapped ::ffff:a.b.c.d": lambda v4: ipaddress.IPv6Address(0xFFFF << 32 | int(v4)),
    "IPv4-compatible ::a.b.c.d": lambda v4: ipaddress.IPv6Address(int(v4)),
    "IPv4-translated ::ffff:0:a.b.c.d": lambda v4: ipaddress.IPv6Address(0xFFFF << 48 | int(v4)),
    "NAT64 64:ff9b::a.b.c.d": lambda v4: ipaddress.IPv6Address(0x64FF9B << 96 | int(v4)),
    "6to4 2002:ab:cd::": lambda v4: ipaddress.IPv6Address(0x2002 << 112 | int(v4) << 80 | 1),
    "Teredo client": lambda v4: ipaddress.IPv6Address(
        0x2001 << 112 | int(ipaddress.IPv4Address("8.8.8.8")) << 64 | (int(v4) ^ 0xFFFFFFFF)),
}


def _samples(cidr: str) -> list[str]:
    network = ipaddress.ip_network(cidr)
    middle = network[network.num_addresses // 2]
    return [str(a) for a in dict.fromkeys([network[0], middle, network[-1]])]


def _cases(cidrs: list[str]) -> list[tuple[str, str]]:
    return [(cidr, address) for cidr in dict.fromkeys(cidrs) for address in _samples(cidr)]


@pytest.mark.parametrize("policy", POLICIES, ids=str)
@pytest.mark.parametrize(("cidr", "address"), _cases([*IANA_IPV4, *IANA_IPV6, *SYNAPSE_FLOOR]))
def test_every_special_purpose_address_is_denied(policy: str, cidr: str, address: str) -> None:
    assert not POLICIES[policy].is_allowed(address), f"{address} (in {cidr}) reached via {policy}"


@pytest.mark.parametrize("policy", POLICIES, ids=str)
@pytest.mark.parametrize("wrapper", WRAPPERS, ids=str)
@pytest.mark.parametrize(("cidr", "address"), _cases([*IANA_IPV4, "224.0.0.0/4"]))
def test_special_ipv4_wrapped_in_ipv6_is_denied(
    policy: str, wrapper: str, cidr: str, address: str
) -> None:
    wrapped = WRAPPERS[wrapper](ipaddress.IPv4Address(address))
    assert not POLICIES[policy].is_allowed(wrapped), f"{wrapped} ({wrapper} of {address}, {cidr})"


@pytest.mark.parametrize("policy", POLICIES, ids=str)
@pytest.mark.parametrize(
    "address",
    ["::7f00:1", "::ffff:0:7f00:1", "198.18.0.1", "198.19.255.254", "224.0.0.1",
     "239.255.255.250", "240.0.0.1", "255.255.255.255", "ff02::1", "fec0::1", "2001:db8::1"],
)
def test_the_holes_found_in_review_are_closed(policy: str, address: str) -> None:
    assert not POLICIES[policy].is_allowed(address)


@pytest.mark.parametrize("policy", POLICIES, ids=str)
@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001::1",
     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
def test_public_addresses_stay_reachable(policy: str, address: str) -> None:
    assert POLICIES[policy].is_allowed(address)
