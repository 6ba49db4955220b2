"""A small keep-alive HTTP/1.1 GET client on asyncio streams, for reading S3 objects.

httpx cost twice the CPU of boto's GET for a 1 MiB object (py-spy: its byte re-chunker, anyio's
per-read timeouts, h11's buffers); reading a body here is a `readexactly` per chunk. It does
only what an S3 GET needs: one origin, presigned URLs (no auth headers), `Content-Length` or
chunked bodies, connections reused when a body was read to its end.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

CONNECT_SECONDS = 10.0
READ_SECONDS = 60.0
BUFFER_LIMIT = 1024 * 1024
"""Bytes a connection buffers ahead of the reader (asyncio pauses the socket at twice this)."""
HEAD_MAX_BYTES = 64 * 1024
IDLE_MAX = 32
ERROR_BODY_MAX_BYTES = 64 * 1024


class HttpGetError(Exception):
    """The server could not be reached, or broke the protocol or the connection."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    _connection: _Connection
    _pool: ConnectionPool
    _length: int | None  # None: chunked, or until the connection closes
    _chunked: bool
    _done: bool = False

    async def body(self, chunk_size: int) -> AsyncGenerator[bytes, None]:
        """The body in chunks of at most `chunk_size`; the connection goes back to the pool
        once it is read to its end, and is closed if the reader stops early."""
        try:
            if self._chunked:
                async for chunk in self._chunked_body(chunk_size):
                    yield chunk
            elif self._length is not None:
                remaining = self._length
                while remaining:
                    chunk = await self._read(min(chunk_size, remaining))
                    remaining -= len(chunk)
                    yield chunk
            else:
                while chunk := await _timed(self._connection.reader.read(chunk_size)):
                    yield chunk
                self._connection.reusable = False
            self._done = True
        finally:
            self.release()

    async def read_all(self, max_bytes: int) -> bytes:
        """The body, or its first `max_bytes` (then the connection is closed)."""
        parts: list[bytes] = []
        size = 0
        chunks = self.body(max_bytes)
        try:
            async for chunk in chunks:
                parts.append(chunk)
                size += len(chunk)
                if size >= max_bytes:
                    break
        finally:
            await chunks.aclose()
            self.release()
        return b"".join(parts)

    def release(self) -> None:
        """Back to the pool when the body was read to its end, else closed; idempotent."""
        if self._done and self._connection.reusable:
            self._pool.put_back(self._connection)
        else:
            self._connection.close()
        self._done = False
        self._connection = _CLOSED

    async def _read(self, size: int) -> bytes:
        try:
            return await _timed(self._connection.reader.readexactly(size))
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise HttpGetError(f"connection lost in the body: {exc!r}") from exc

    async def _chunked_body(self, chunk_size: int) -> AsyncIterator[bytes]:
        reader = self._connection.reader
        while True:
            line = await _timed(reader.readuntil(b"\r\n"))
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await _timed(reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailer fields, unused
                return
            while size:
                chunk = await self._read(min(chunk_size, size))
                size -= len(chunk)
                yield chunk
            await self._read(2)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reusable: bool = True

    def close(self) -> None:
        self.reusable = False
        if not self.writer.is_closing():
            self.writer.close()


class _Closed:
    reusable = False

    def close(self) -> None:
        return None


_CLOSED: _Connection = _Closed()  # type: ignore[assignment]


async def _timed(operation: Awaitable[T]) -> T:
    async with asyncio.timeout(READ_SECONDS):
        return await operation


@dataclass
class ConnectionPool:
    """Idle connections to one origin, for the event loop that opened them."""

    origin: str  # scheme://host[:port]
    idle: list[_Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.origin)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = parts.netloc
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            import certifi

            self.ssl = ssl.create_default_context(cafile=certifi.where())

    def put_back(self, connection: _Connection) -> None:
        if len(self.idle) < IDLE_MAX:
            self.idle.append(connection)
        else:
            connection.close()

    async def get(self, target: str, headers: dict[str, str]) -> Response:
        """Send `GET target` and read the status and headers; the body is left to the caller.
        A pooled connection the server closed while idle is retried once on a new one."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"GET {target} HTTP/1.1\r\nHost: {self.netloc}\r\n{extra}\r\n".encode()
        while self.idle:
            connection = self.idle.pop()
            try:
                return await self._exchange(connection, request)
            except (HttpGetError, OSError, asyncio.IncompleteReadError):
                connection.close()
        connection = await self._connect()
        try:
            return await self._exchange(connection, request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            connection.close()
            raise HttpGetError(f"GET {self.origin}: {exc!r}") from exc
        except BaseException:
            connection.close()
            raise

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl, limit=BUFFER_LIMIT)
        except (OSError, TimeoutError) as exc:
            raise HttpGetError(f"cannot connect to {self.origin}: {exc!r}") from exc
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, request: bytes) -> Response:
        connection.writer.write(request)
        head = await _timed(connection.reader.readuntil(b"\r\n\r\n"))
        if len(head) > HEAD_MAX_BYTES:
            raise HttpGetError("response head too large")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = lines[0].split(" ", 2)
        if not version.startswith("HTTP/1."):
            raise HttpGetError(f"not an HTTP/1 response: {lines[0]!r}")
        fields: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        chunked = "chunked" in fields.get("transfer-encoding", "").lower()
        length = None if chunked or "content-length" not in fields else int(fields["content-length"])
        if length is None and not chunked:
            connection.reusable = False
        if fields.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            connection.reusable = False
        return Response(int(status), fields, connection, self, length, chunked)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()
