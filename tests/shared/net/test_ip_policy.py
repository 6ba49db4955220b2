"""IpPolicy and IP spelling normalisation: pure logic, no network."""

from __future__ import annotations

import ipaddress

import pytest

from shared.config import UrlPreviewsConfig
from shared.net.ip_policy import IpPolicy, parse_ip_literal

DEFAULTS = UrlPreviewsConfig()
DEFAULT_POLICY = IpPolicy.from_cidrs(DEFAULTS.allowed_networks, DEFAULTS.disallowed_networks)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.255.1.2", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "100.64.0.1", "169.254.169.254", "0.0.0.0", "0.1.2.3", "::1", "::", "fe80::1",
        "fc00::1", "fd12:3456::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1",
        "2002:7f00:1::1",
    ],
)
def test_default_policy_blocks_internal_addresses(address: str) -> None:
    assert not DEFAULT_POLICY.is_allowed(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8", "172.32.0.1", "100.128.0.1"])
def test_default_policy_allows_public_addresses(address: str) -> None:
    assert DEFAULT_POLICY.is_allowed(address)


def test_deny_wins_over_allow_and_unlisted_is_denied() -> None:
    policy = IpPolicy.from_cidrs(["10.0.0.0/8"], ["10.9.0.0/16"])
    assert policy.is_allowed("10.1.1.1")
    assert not policy.is_allowed("10.9.1.1")
    assert not policy.is_allowed("8.8.8.8")


def test_this_host_addresses_are_blocked_even_when_allowed_explicitly() -> None:
    policy = IpPolicy.from_cidrs(["0.0.0.0/0", "::/0"], [])
    assert not policy.is_allowed("0.0.0.0")
    assert not policy.is_allowed("::")


def test_bad_cidr_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"disallowedNetworks.*'10\.0\.0\.0/33'"):
        IpPolicy.from_cidrs(["0.0.0.0/0"], ["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("spelling", "meaning"),
    [
        ("127.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"), ("0x7f.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"), ("::ffff:127.0.0.1", "::ffff:7f00:1"), ("fe80::1%eth0", "fe80::1"),
        ("0", "0.0.0.0"),
    ],
)
def test_every_ip_spelling_is_read_as_the_address_it_means(spelling: str, meaning: str) -> None:
    assert parse_ip_literal(spelling) == ipaddress.ip_address(meaning)


@pytest.mark.parametrize("name", ["example.com", "127.0.0.1.example.com", "256.1", "1.2.3.4.5",
                                  "0x1g", "localhost"])
def test_names_are_not_ip_literals(name: str) -> None:
    assert parse_ip_literal(name) is None
