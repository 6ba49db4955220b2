"""Checking that an incoming federation request really comes from the server it names."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.config import HomeserverConfig
from shared.federation.keys import KeyStore
from shared.federation.xmatrix import XMatrixError, parse_xmatrix, verify_request
from shared.ids.media_id import is_valid_server_name
from shared.matrix.errors import Unauthorized

log = logging.getLogger(__name__)


async def authenticate_request(
    keys: KeyStore,
    hs: HomeserverConfig,
    method: str,
    uri: str,
    authorizations: Sequence[str],
) -> str:
    """The origin server of a request carrying a valid X-Matrix signature; 401 otherwise.

    `uri` is the path and query exactly as sent. Several X-Matrix headers may be sent (one per
    key); one valid signature is enough. A missing `destination` is accepted for older senders.
    """
    headers = [value for value in authorizations if value.strip().lower().startswith("x-matrix")]
    if not headers:
        raise Unauthorized("Missing X-Matrix Authorization header")
    failure = "Invalid X-Matrix signature"
    for header in headers:
        try:
            auth = parse_xmatrix(header)
        except XMatrixError as exc:
            failure = str(exc)
            continue
        if auth.destination is not None and auth.destination != hs.name:
            failure = f"This request is addressed to {auth.destination!r}, not {hs.name!r}"
            continue
        if not is_valid_server_name(auth.origin):
            failure = "Invalid origin server name"
            continue
        verify_key = await keys.verify_key(auth.origin, auth.key_id)
        if verify_key is not None and verify_request(auth, method, uri, verify_key):
            return auth.origin
        failure = f"Could not verify the signature of {auth.origin} with key {auth.key_id}"
    log.info("rejected a federation request: %s", failure)
    raise Unauthorized(failure)
