"""Routing on the raw path: what a percent-encoding could smuggle past the router stops here.

The router matches the *decoded* path, so `download/a%2Fb/abcdef` would become the server `a`,
the media ID `b` and the file name `abcdef`, and a federation request would go to `a`. This pure
ASGI middleware runs before routing, on the path exactly as the client sent it:

* under `/_matrix/`, a segment holding an encoded `/` or any control byte (`%00`, `%0A`...)
  is 400 `M_INVALID_PARAM`;
* where a route's segments are a server name and a media ID (downloads, thumbnails, info,
  async uploads, federation media), each must match the spec's grammar, else 400
  `M_INVALID_PARAM`, before any authentication, database, storage or network access.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.ids.media_id import is_valid_media_id, is_valid_server_name

_MATRIX = b"/_matrix/"
# `.../{download,thumbnail,info,upload,local_copy}/{serverName}/{mediaId}` on every media API
# version, and federation's `.../media/{download,thumbnail}/{mediaId}`.
_CLIENT_MEDIA = re.compile(
    rb"^/_matrix/(?:media/(?:r0|v1|v3|unstable(?:/[^/]+)?)|client/v1/media)"
    rb"/(?:download|thumbnail|info|upload|local_copy)/(?P<server>[^/]*)(?:/(?P<media>[^/]*))?"
)
_FEDERATION_MEDIA = re.compile(rb"^/_matrix/federation/v1/media/(?:download|thumbnail)/(?P<media>[^/]*)")


def path_problem(raw_path: bytes) -> str | None:
    """Why this raw path may not be routed, or None when it may."""
    if not raw_path.startswith(_MATRIX):
        return None
    for segment in raw_path.split(b"/"):
        if b"%" not in segment:
            if any(byte < 0x20 or byte == 0x7F for byte in segment):
                return "The path holds a control character"
            continue
        decoded = unquote_to_bytes(segment)
        if b"/" in decoded:
            return "The path holds an encoded '/' in one of its segments"
        if any(byte < 0x20 or byte == 0x7F for byte in decoded):
            return "The path holds an encoded control character"
    client = _CLIENT_MEDIA.match(raw_path)
    if client is not None:
        if not is_valid_server_name(_text(client.group("server"))):
            return "Invalid server name"
        media = client.group("media")
        if media is not None and not is_valid_media_id(_text(media)):
            return "Invalid media ID"
    federation = _FEDERATION_MEDIA.match(raw_path)
    if federation is not None and not is_valid_media_id(_text(federation.group("media"))):
        return "Invalid media ID"
    return None


def _text(segment: bytes) -> str:
    return unquote_to_bytes(segment).decode("utf-8", errors="replace")


class RawPathGuard:
    """400 `M_INVALID_PARAM` for a path whose raw form could confuse routing (see above)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode("utf-8", errors="replace")
            problem = path_problem(raw.split(b"?", 1)[0])
            if problem is not None:
                body = json.dumps({"errcode": "M_INVALID_PARAM", "error": problem}).encode()
                await send({"type": "http.response.start", "status": 400, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
