"""Media IDs and the spec's allow-list validation of media IDs and server names.

A media ID is a snowflake (unique cluster-wide) followed by 96 random bits (unguessable), both
base64url without padding, so it matches the spec's `[A-Za-z0-9_-]+`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.ids.snowflake import SnowflakeGenerator

RANDOM_BYTES = 12  # 96 bits
MEDIA_ID_ATTEMPTS = 10
"""A collision needs the same snowflake and 96 random bits; retrying is the database's backstop."""
T = TypeVar("T")
MEDIA_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME_RE = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_media_id(generator: SnowflakeGenerator) -> str:
    snowflake = generator.next_id().to_bytes(8, "big")
    return _b64(snowflake) + _b64(secrets.token_bytes(RANDOM_BYTES))


async def with_new_media_id(
    generator: SnowflakeGenerator,
    insert: Callable[[str], Awaitable[T]],
    taken: type[Exception],
    attempts: int = MEDIA_ID_ATTEMPTS,
) -> T:
    """`insert(new_id)` under fresh IDs until it does not raise `taken` (an ID collision)."""
    for _ in range(attempts):
        try:
            return await insert(new_media_id(generator))
        except taken:
            continue
    raise RuntimeError(f"could not allocate a unique media ID in {attempts} attempts")


def is_valid_media_id(media_id: str) -> bool:
    return bool(MEDIA_ID_RE.match(media_id))


def _valid_port(port: str) -> bool:
    return bool(_PORT_RE.match(port)) and 0 < int(port) < 65536


def is_valid_server_name(name: str) -> bool:
    """The spec's server-name grammar: `host[:port]` with IPv4, `[IPv6]` or a DNS name."""
    if not name or len(name) > 255:
        return False
    if name.startswith("["):
        host, sep, rest = name[1:].partition("]")
        if not sep:
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return rest == "" or (rest.startswith(":") and _valid_port(rest[1:]))
    host, sep, port = name.partition(":")
    if sep and not _valid_port(port):
        return False
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return bool(_DNS_NAME_RE.match(host))
