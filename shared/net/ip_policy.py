"""Which IP addresses outbound requests may connect to.

An address is allowed when it is inside some allowed network and inside no disallowed network
(deny wins; anything not allowed is denied, as in matrix-media-repo). IPv6 addresses that carry
an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated
`::ffff:0:a.b.c.d`, NAT64's `64:ff9b::/96`, 6to4, Teredo) are also judged by that IPv4 address, so
`::ffff:127.0.0.1` and `::7f00:1` are as blocked as `127.0.0.1`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_DISALLOWED = ("0.0.0.0/8", "::/128")
""""This host" addresses: Linux connects `0.0.0.0` to the local machine, so they are always
blocked whatever the configuration says (matrix-media-repo always adds 0.0.0.0/32 and ::/128)."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def parse_networks(cidrs: Iterable[str], *, setting: str = "networks") -> list[IPNetwork]:
    """Parse CIDR strings (host bits may be set: `127.0.0.1/8` means 127.0.0.0/8).

    Raises ValueError naming `setting` and the bad entry.
    """
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{setting}: {cidr!r} is not an IP network ({exc})") from exc
    return networks


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any.

    IPv4-mapped, IPv4-compatible (deprecated, but still routed by some stacks), IPv4-translated
    (SIIT), NAT64 well-known prefix, 6to4 and the Teredo client address.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The IP address `host` spells, or None when it is a name.

    Besides the canonical forms this accepts every spelling `inet_aton` (and so the system
    resolver) accepts: `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`. Treating those as the
    address they mean keeps a name-to-address resolver from ever being asked about them.
    """
    candidate = host.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    candidate = candidate.rstrip(".") if candidate.count(":") == 0 else candidate
    try:
        return ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return _parse_inet_aton(candidate)


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    values = [_inet_aton_part(part) for part in parts]
    # The last part fills all the bytes the earlier parts did not: `127.1` is 127.0.0.1.
    last_bits = 8 * (5 - len(values))
    if any(v > 0xFF for v in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def _inet_aton_part(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    return int(part, 8) if part.startswith("0") else int(part)


@dataclass(frozen=True)
class IpPolicy:
    """Allowed and disallowed networks; `is_allowed(ip)` is the whole decision."""

    allowed: tuple[IPNetwork, ...]
    disallowed: tuple[IPNetwork, ...]

    @classmethod
    def from_cidrs(cls, allowed: Iterable[str], disallowed: Iterable[str]) -> IpPolicy:
        """Build from config strings; `ALWAYS_DISALLOWED` is added to the deny list."""
        return cls(
            allowed=tuple(parse_networks(allowed, setting="allowedNetworks")),
            disallowed=tuple(
                parse_networks([*disallowed, *ALWAYS_DISALLOWED], setting="disallowedNetworks")
            ),
        )

    def is_allowed(self, ip: IPAddress | str) -> bool:
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        inner = embedded_ipv4(address)
        if inner is not None and not self._judge(inner):
            return False
        return self._judge(address)

    def _judge(self, ip: IPAddress) -> bool:
        if any(ip in network for network in self.disallowed):
            return False
        return any(ip in network for network in self.allowed)
