"""A federation origin of the test's own: an HTTPS server on loopback that publishes a signing
key at `/_matrix/key/v2/server` (self-signed with it), so mmr can verify X-Matrix requests the
test signs as that server without a whole homeserver."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path
from typing import Any

from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from shared.federation.xmatrix import key_id_of, sign_request
from tests.infra.fixture_web import FixtureWebServer, respond

KEY_VALIDITY_MS = 3600 * 1000


class FederationOrigin:
    def __init__(self, cert: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.signing_key = generate_signing_key("origin")
        self.web = FixtureWebServer(tls=context)
        self.web.routes["/_matrix/key/v2/server"] = lambda req: respond(
            req, json.dumps(self.server_keys()).encode(), "application/json")

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.web.port}"

    def server_keys(self) -> dict[str, Any]:
        verify_key = encode_verify_key_base64(get_verify_key(self.signing_key))
        keys = {"server_name": self.server_name, "old_verify_keys": {},
                "valid_until_ts": int(time.time() * 1000) + KEY_VALIDITY_MS,
                "verify_keys": {key_id_of(self.signing_key): {"key": verify_key}}}
        signed: dict[str, Any] = sign_json(keys, self.server_name, self.signing_key)
        return signed

    def authorization(self, destination: str, uri: str, method: str = "GET") -> dict[str, str]:
        return {"Authorization": sign_request(self.signing_key, self.server_name, destination,
                                              method, uri)}

    def __enter__(self) -> FederationOrigin:
        self.web.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.web.__exit__(*exc)
