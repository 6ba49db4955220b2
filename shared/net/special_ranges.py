"""The special-purpose address ranges no outbound request may reach by default.

Every entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its
updates, as of 2025), plus multicast and the deprecated site-local and IPv4-compatible ranges
that Synapse's default deny list also carries. Both `urlPreviews.disallowedNetworks` and
`federation.deniedNetworks` default to this list.

Ranges that only wrap an IPv4 address (IPv4-mapped, NAT64's well-known prefix, 6to4) are not
listed: `shared.net.ip_policy` unwraps them and judges the IPv4 address inside, so the public
addresses they carry stay reachable while the wrapped private ones do not.
"""

from __future__ import annotations

SPECIAL_PURPOSE_IPV4: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private use"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link local"),
    ("172.16.0.0/12", "private use"),
    ("192.0.0.0/24", "IETF protocol assignments (DS-Lite, NAT64 discovery, PCP/TURN anycast)"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112-v4"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private use"),
    ("192.175.48.0/24", "direct delegation AS112 service"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "limited broadcast"),
)

SPECIAL_PURPOSE_IPV6: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "deprecated IPv4-compatible"),
    ("::ffff:0:0:0/96", "IPv4-translated (SIIT)"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
    ("100::/64", "discard only"),
    ("100:0:0:1::/64", "dummy IPv6 prefix"),
    ("2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID, ...)"),
    ("2001:db8::/32", "documentation"),
    ("2620:4f:8000::/48", "direct delegation AS112 service"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) SIDs"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link local"),
    ("fec0::/10", "deprecated site local"),
    ("ff00::/8", "multicast"),
)

WRAPPED_IPV4_PREFIXES: tuple[tuple[str, str], ...] = (
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("64:ff9b::/96", "IPv4/IPv6 translation (NAT64 well-known prefix)"),
    ("2002::/16", "6to4"),
)
"""Special-purpose ranges that are judged by the IPv4 address they carry instead."""


def default_denied_networks() -> list[str]:
    """A fresh list (config defaults must not share one mutable list)."""
    return [cidr for cidr, _ in (*SPECIAL_PURPOSE_IPV4, *SPECIAL_PURPOSE_IPV6)]
