"""A real HTTP server on loopback that serves test pages and counts every TCP connection.

`connections` counts accepted sockets (not requests), so a test can show that a refused fetch
never even connected. Routes map a path to a handler that writes the whole response.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]


def respond(
    req: BaseHTTPRequestHandler, body: bytes, content_type: str, status: int = 200,
    headers: dict[str, str] | None = None,
) -> None:
    req.send_response(status)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        req.send_header(name, value)
    req.end_headers()
    req.wfile.write(body)


def page(body: bytes | str, content_type: str = "text/html; charset=utf-8") -> Handler:
    data = body.encode() if isinstance(body, str) else body
    return lambda req: respond(req, data, content_type)


def redirect(location: str, status: int = 302) -> Handler:
    return lambda req: respond(req, b"", "text/plain", status, {"Location": location})


def streamed(chunks: Callable[[], Iterator[bytes]], content_type: str,
             delay_seconds: float = 0.0) -> Handler:
    """A response without Content-Length (connection-close framing), optionally slow.

    The bytes the client accepted are counted in `FixtureWebServer.bytes_sent[path]`.
    """

    def handle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", content_type)
        req.send_header("Connection", "close")
        req.end_headers()
        sent = req.server.owner.bytes_sent  # type: ignore[attr-defined]
        path = req.path.split("?", 1)[0]
        try:
            for chunk in chunks():
                req.wfile.write(chunk)
                req.wfile.flush()
                sent[path] = sent.get(path, 0) + len(chunk)
                if delay_seconds:
                    time.sleep(delay_seconds)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading, which is what the tests expect of a capped fetch
        req.close_connection = True

    return handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FixtureWebServer

    def verify_request(self, request: Any, _client_address: Any) -> bool:
        self.owner.connections += 1
        return True


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        owner.requests.append(SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}))
        handler = owner.routes.get(path)
        if handler is None:
            respond(self, b"not found", "text/plain", 404)
        else:
            handler(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FixtureWebServer:
    """`with FixtureWebServer() as web: web.routes["/a"] = page("<html>..."); web.url("/a")`."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.scheme = "https" if tls else "http"
        self.routes: dict[str, Handler] = {}
        self.requests: list[SeenRequest] = []
        self.connections = 0
        self.bytes_sent: dict[str, int] = {}
        self._server = _Server((host, 0), _RequestHandler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        # A short poll interval keeps shutdown (one per test) from costing half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path.split("?", 1)[0] == path)

    def __enter__(self) -> FixtureWebServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
