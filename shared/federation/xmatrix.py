"""X-Matrix request authentication: signing our requests and checking other servers' requests.

A request is authenticated by an ed25519 signature over the canonical JSON of
`{"method", "uri", "origin", "destination"[, "content"]}`, carried in
`Authorization: X-Matrix origin="o",destination="d",key="ed25519:k",sig="..."`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signedjson.key import SigningKey, VerifyKey, read_signing_keys
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json

SCHEME = "X-Matrix"

# One auth-param (RFC 9110 §11.4): a token name, `=`, then a quoted string or a token. Tokens are
# widened to anything up to a comma, because some servers send unquoted `ed25519:abc` values.
_PARAM = re.compile(
    r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^",\s]+))\s*(?:,|$)'
)


class XMatrixError(ValueError):
    """The Authorization header is not a usable X-Matrix header."""


@dataclass(frozen=True)
class XMatrixAuth:
    origin: str
    destination: str | None
    key_id: str
    signature: str


def load_signing_key(path: str | Path) -> SigningKey:
    """The first key of a Synapse-format signing key file (`ed25519 <version> <base64 seed>`)."""
    with open(path) as handle:
        keys = read_signing_keys(handle)
    if not keys:
        raise ValueError(f"{path}: no signing key in the file")
    key: SigningKey = keys[0]
    return key


def key_id_of(key: SigningKey | VerifyKey) -> str:
    return f"{key.alg}:{key.version}"


def request_json(
    method: str, uri: str, origin: str, destination: str | None, content: Any = None
) -> dict[str, Any]:
    """The object whose signature authenticates a request (`content` omitted when None)."""
    signed: dict[str, Any] = {"method": method.upper(), "uri": uri, "origin": origin}
    if destination is not None:
        signed["destination"] = destination
    if content is not None:
        signed["content"] = content
    return signed


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sign_request(
    key: SigningKey, origin: str, destination: str, method: str, uri: str, content: Any = None
) -> str:
    """The `Authorization` header value for a request from `origin` to `destination`."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, key)
    key_id = key_id_of(key)
    signature = signed["signatures"][origin][key_id]
    params = {"origin": origin, "destination": destination, "key": key_id, "sig": signature}
    return f"{SCHEME} " + ",".join(f"{name}={_quote(value)}" for name, value in params.items())


def parse_xmatrix(header: str) -> XMatrixAuth:
    """Parse an `Authorization` value; raise `XMatrixError` when it is not a complete X-Matrix one."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise XMatrixError("not an X-Matrix Authorization header")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            raise XMatrixError("malformed X-Matrix parameters")
        name, quoted, token = match.groups()
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
        params[name.lower()] = value
        position = match.end()
    missing = [name for name in ("origin", "key", "sig") if not params.get(name)]
    if missing:
        raise XMatrixError(f"X-Matrix header lacks {', '.join(missing)}")
    return XMatrixAuth(
        origin=params["origin"],
        destination=params.get("destination"),
        key_id=params["key"],
        signature=params["sig"],
    )


def verify_request(
    auth: XMatrixAuth, method: str, uri: str, verify_key: VerifyKey, content: Any = None
) -> bool:
    """True when `auth.signature` is `verify_key`'s signature over this request."""
    signed = request_json(method, uri, auth.origin, auth.destination, content)
    signed["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
    try:
        verify_signed_json(signed, auth.origin, verify_key)
    except SignatureVerifyException:
        return False
    return True
