"""X-Matrix headers: what we sign verifies, and parsing follows RFC 9110 auth-params."""

from __future__ import annotations

from pathlib import Path

import pytest
from signedjson.key import generate_signing_key, get_verify_key, write_signing_keys

from shared.federation.xmatrix import (
    XMatrixError,
    key_id_of,
    load_signing_key,
    parse_xmatrix,
    sign_request,
    verify_request,
)

KEY = generate_signing_key("a1")
OTHER_KEY = generate_signing_key("a1")
URI = "/_matrix/federation/v1/media/download/abc?timeout_ms=20000"


def test_a_signed_request_verifies_with_the_signers_key() -> None:
    header = sign_request(KEY, "origin.example", "dest.example", "GET", URI)
    auth = parse_xmatrix(header)
    assert (auth.origin, auth.destination, auth.key_id) == ("origin.example", "dest.example", "ed25519:a1")
    assert verify_request(auth, "GET", URI, get_verify_key(KEY))


@pytest.mark.parametrize("change", ["uri", "method", "origin", "destination", "key"])
def test_any_change_breaks_the_signature(change: str) -> None:
    auth = parse_xmatrix(sign_request(KEY, "origin.example", "dest.example", "GET", URI))
    method, uri, key = "GET", URI, get_verify_key(KEY)
    if change == "uri":
        uri = URI.replace("abc", "abd")
    elif change == "method":
        method = "POST"
    elif change == "origin":
        auth = type(auth)("evil.example", auth.destination, auth.key_id, auth.signature)
    elif change == "destination":
        auth = type(auth)(auth.origin, "other.example", auth.key_id, auth.signature)
    else:
        key = get_verify_key(OTHER_KEY)
    assert not verify_request(auth, method, uri, key)


def test_parsing_accepts_unquoted_values_spaces_escapes_and_any_case() -> None:
    auth = parse_xmatrix(
        'x-matrix  Origin=origin.example:8448 , destination="d\\"x", KEY=ed25519:k1,sig="c2ln"'
    )
    assert auth.origin == "origin.example:8448"
    assert auth.destination == 'd"x'
    assert auth.key_id == "ed25519:k1"
    assert auth.signature == "c2ln"


def test_a_missing_destination_is_allowed() -> None:
    assert parse_xmatrix('X-Matrix origin=o,key="ed25519:k",sig="s"').destination is None


@pytest.mark.parametrize("header", [
    "Bearer abc",
    'X-Matrix origin="o",key="ed25519:k"',
    'X-Matrix origin="o" key="ed25519:k" sig="s"',
    'X-Matrix origin="unterminated,key="k",sig="s"',
    "X-Matrix",
])
def test_incomplete_or_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(XMatrixError):
        parse_xmatrix(header)


def test_synapse_format_key_files_load(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    with open(path, "w") as handle:
        write_signing_keys(handle, [KEY])
    loaded = load_signing_key(path)
    assert key_id_of(loaded) == "ed25519:a1"
    assert loaded.encode() == KEY.encode()
