"""uvicorn's httptools protocol with bounded request heads and Matrix JSON for bad requests
(and one write per small answer: `shared.web.write_coalescing`).

httptools accumulates a header's bytes until its line ends, so one 128 MiB header costs 128 MiB
(several times over while it is copied), long before any ASGI middleware could look at it. The
bound must sit where bytes arrive: `HeadMeter` scans each chunk of a request head before the
parser sees it and rejects the connection as soon as the request line, one header line or the
whole head passes its limit. The answers are Matrix JSON, like every other error of mmr, and so
is uvicorn's own `400 Invalid HTTP request received.` (bad Content-Length, Content-Length with
Transfer-Encoding, control characters, unknown methods).

A head must also arrive in time: uvicorn closes idle keep-alive connections, but not one that
was opened and never finished its head, so a few thousand clients dripping a byte each would
hold every file descriptor of the process. After `HeadLimits.timeout_seconds` such a
connection is answered 408 and closed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.config import RepoConfig
from shared.web.write_coalescing import CoalescingTransport

BODY_HIGH_WATER_BYTES = 1024 * 1024
"""How much of a request body a connection buffers before it stops reading from the socket.

uvicorn stops at 64 KiB, so a 1 MiB upload costs about sixteen pauses and resumes of the socket
(two epoll_ctl calls each) and as many trips through the ASGI receive and Starlette's stream:
at 1 MiB it is a few larger pieces. Still a bound per connection, as uvicorn's is."""


@dataclass(frozen=True)
class HeadLimits:
    """Limits in bytes, each line counted with its line ending."""

    request_line: int
    header_line: int
    head: int
    timeout_seconds: float = 30.0

    @classmethod
    def from_config(cls, repo: RepoConfig) -> HeadLimits:
        return cls(repo.max_request_line_bytes, repo.max_header_bytes, repo.max_request_head_bytes,
                   repo.request_head_timeout_seconds)


@dataclass(frozen=True)
class HeadRejection:
    status: int
    errcode: str
    error: str


class HeadMeter:
    """Counts one request head's bytes as they arrive; `feed` says when a limit is passed.

    A head ends at its first empty line; after that the meter ignores the body until `restart`
    (the parser finished the message). Blank lines before a request line are skipped, as RFC 9112
    allows. On a pipelined connection the part of the next head that shares a read with the
    end of the previous message is not counted, so a limit may be passed by at most one read
    (64 KiB).
    """

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits
        self.restart()

    def restart(self) -> None:
        self.in_head = True
        self._total = 0
        self._line = 0
        self._request_line = True
        self._previous_byte = 0

    def feed(self, data: bytes) -> HeadRejection | None:
        position, size = 0, len(data)
        while self.in_head and position < size:
            newline = data.find(b"\n", position)
            end = size if newline < 0 else newline + 1
            self._line += end - position
            self._total += end - position
            rejection = self._over_limit()
            if rejection is not None:
                return rejection
            if newline >= 0:
                before = data[newline - 1] if newline > position else self._previous_byte
                self._end_line(empty=self._line == 1 or (self._line == 2 and before == 0x0D))
            position = end
        if size:
            self._previous_byte = data[-1]
        return None

    def _end_line(self, empty: bool) -> None:
        if empty and self._request_line:
            self._total -= self._line  # a stray blank line before the request line
        elif empty:
            self.in_head = False
        else:
            self._request_line = False
        self._line = 0

    def _over_limit(self) -> HeadRejection | None:
        limits = self.limits
        if self._request_line and self._line > limits.request_line:
            return HeadRejection(414, "M_TOO_LARGE",
                                 f"The request line is longer than {limits.request_line} bytes")
        if not self._request_line and self._line > limits.header_line:
            return HeadRejection(431, "M_TOO_LARGE",
                                 f"A request header is longer than {limits.header_line} bytes")
        if self._total > limits.head:
            return HeadRejection(431, "M_TOO_LARGE",
                                 f"The request headers are larger than {limits.head} bytes")
        return None


def matrix_error_bytes(status: int, errcode: str, error: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection: nothing more is read from it."""
    body = json.dumps({"errcode": errcode, "error": error}).encode()
    reason = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
              431: "Request Header Fields Too Large"}
    return b"".join([
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n".encode(),
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
        body,
    ])


class MatrixHttpToolsProtocol(HttpToolsProtocol):
    """Set `limits` on a subclass (`protocol_with_limits`); uvicorn builds one per connection."""

    limits: HeadLimits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.head_meter = HeadMeter(self.limits)
        self.head_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        # Request cycles take the protocol's transport: a small answer's head and body leave in
        # one write (flow control still watches the real transport).
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        rejection = self.head_meter.feed(data)
        if rejection is None:
            super().data_received(data)
            self._watch_head()
            return
        self._refuse(rejection)

    def _refuse(self, rejection: HeadRejection) -> None:
        self.logger.warning("request head refused: %s", rejection.error)
        self.transport.write(matrix_error_bytes(rejection.status, rejection.errcode, rejection.error))
        self.transport.close()

    def _watch_head(self) -> None:
        """A deadline while a head is awaited; none once it is whole (bodies may be slow)."""
        if not self.head_meter.in_head:
            self._forget_head_deadline()
        elif self.head_deadline is None:
            self.head_deadline = self.loop.call_later(self.limits.timeout_seconds, self._head_late)

    def _forget_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_late(self) -> None:
        self.head_deadline = None
        if self.transport.is_closing() or not self.head_meter.in_head:
            return
        cycle = getattr(self, "cycle", None)
        if cycle is not None and not cycle.response_complete:
            self._watch_head()  # an answer is still going out: the next head can wait for it
            return
        self._refuse(HeadRejection(408, "M_UNKNOWN", "The request head did not arrive within "
                                   f"{self.limits.timeout_seconds:g} seconds"))

    def on_body(self, body: bytes) -> None:
        # uvicorn's on_body with a larger high-water mark (BODY_HIGH_WATER_BYTES).
        if (self.parser.should_upgrade() and self._should_upgrade()) or self.cycle.response_complete:
            return
        self.cycle.body += body
        if len(self.cycle.body) > BODY_HIGH_WATER_BYTES:
            self.flow.pause_reading()
        self.cycle.message_event.set()

    def on_message_complete(self) -> None:
        # The next bytes on this connection are the next request's head.
        self.head_meter.restart()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(matrix_error_bytes(400, "M_UNKNOWN", "Invalid HTTP request"))
        self.transport.close()


def protocol_with_limits(limits: HeadLimits) -> type[MatrixHttpToolsProtocol]:
    """The protocol class to give uvicorn as `http=`."""
    return type("LimitedHttpToolsProtocol", (MatrixHttpToolsProtocol,), {"limits": limits})
