"""Routing on the raw path: what a percent-encoding could smuggle past the router stops here.

The router matches the *decoded* path, so `download/a%2Fb/abcdef` would become the server `a`,
the media ID `b` and the file name `abcdef`, and a federation request would go to `a`. This pure
ASGI middleware runs before routing, on the path exactly as the client sent it:

* under `/_matrix/`, a segment holding an encoded `/` or a NUL byte (`%00`) is 400
  `M_INVALID_PARAM`, and so is a NUL byte in the query string (no Matrix parameter holds one,
  and PostgreSQL refuses it in text);
* where a route's segments are a server name and a media ID (downloads, thumbnails, info,
  async uploads, federation media), each must match the spec's grammar, else 404
  `M_NOT_FOUND` (no media can have that name, as the pipelines answer too).

Both happen before any authentication, database, storage or network access.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PathProblem:
    status: int
    errcode: str
    error: str


def _invalid(error: str) -> PathProblem:
    return PathProblem(400, "M_INVALID_PARAM", error)


def _no_such_media(error: str) -> PathProblem:
    # As the pipelines answer a name outside the grammar: no media can have it.
    return PathProblem(404, "M_NOT_FOUND", error)


def query_problem(raw_path: bytes, query_string: bytes) -> PathProblem | None:
    """Why this query string may not reach a route, or None when it may."""
    if raw_path.startswith(_MATRIX) and b"\x00" in unquote_to_bytes(query_string.replace(b"+", b" ")):
        return _invalid("The query string holds a NUL byte")
    return None


def path_problem(raw_path: bytes) -> PathProblem | None:
    """Why this raw path may not be routed, or None when it may."""
    if not raw_path.startswith(_MATRIX):
        return None
    for segment in raw_path.split(b"/"):
        decoded = unquote_to_bytes(segment) if b"%" in segment else segment
        if b"/" in decoded:
            return _invalid("The path holds an encoded '/' in one of its segments")
        if b"\x00" in decoded:
            return _invalid("The path holds a NUL byte")
        # Other control bytes are stripped from file names; IDs cannot hold them (grammar).
    client = _CLIENT_MEDIA.match(raw_path)
    if client is not None:
        if not is_valid_server_name(_text(client.group("server"))):
            return _no_such_media("Invalid server name")
        media = client.group("media")
        if media is not None and not is_valid_media_id(_text(media)):
            return _no_such_media("Invalid media ID")
    federation = _FEDERATION_MEDIA.match(raw_path)
    if federation is not None and not is_valid_media_id(_text(federation.group("media"))):
        return _no_such_media("Invalid media ID")
    return None


def _text(segment: bytes) -> str:
    return unquote_to_bytes(segment).decode("utf-8", errors="replace")


class RawPathGuard:
    """Answers a path whose raw form could confuse routing (see above) before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode("utf-8", errors="replace")
            path = raw.split(b"?", 1)[0]
            problem = path_problem(path) or query_problem(path, scope.get("query_string", b""))
            if problem is not None:
                body = json.dumps({"errcode": problem.errcode, "error": problem.error}).encode()
                await send({"type": "http.response.start", "status": problem.status, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
