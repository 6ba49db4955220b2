"""Pure ASGI middleware: CORS on every response, preflight without a token, request IDs.

Pure ASGI (not BaseHTTPMiddleware) so streamed bodies pass through untouched.
"""

from __future__ import annotations

import contextvars
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORS_HEADERS: list[tuple[bytes, bytes]] = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    (b"access-control-allow-headers", b"X-Requested-With, Content-Type, Authorization"),
]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# The homeserver the request's Host picked (set by the dependency that picks it), for the logs.
homeserver_var: contextvars.ContextVar[str] = contextvars.ContextVar("homeserver", default="-")
# The request's Host header as sent: which per-domain config applies on a route that never
# picks its homeserver (`Runtime.request_config`).
host_var: contextvars.ContextVar[str] = contextvars.ContextVar("host", default="")


class MatrixHttpMiddleware:
    """Adds the spec's CORS headers and an `X-Request-Id`, and answers OPTIONS preflights."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or secrets.token_hex(8)
        request_id_var.set(request_id)
        host_var.set(_host(scope))
        extra = [*CORS_HEADERS, (b"x-request-id", request_id.encode())]
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 200, "headers": [
                *extra, (b"content-type", b"application/json"), (b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"{}"})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"host":
            return str(value.decode("latin-1"))
    return ""


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and all(c.isalnum() or c in "-_." for c in text):
                return text
    return None
