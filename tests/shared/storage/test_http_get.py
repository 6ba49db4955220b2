"""The S3 read client's HTTP/1.1 handling against a loopback server that answers as told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.storage.http_get import ConnectionPool, HttpGetError


class Answers:
    """A loopback server giving each request the next canned answer; counts connections."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                self.requests.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(self.answers.pop(0))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def answers() -> AsyncIterator[tuple[Answers, ConnectionPool]]:
    server_answers = Answers([])
    server = await asyncio.start_server(server_answers.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool(f"http://127.0.0.1:{port}")
    yield server_answers, pool
    pool.close()
    server.close()


async def _body(pool: ConnectionPool, chunk_size: int = 4) -> tuple[int, list[bytes]]:
    response = await pool.get("/b/k?sig=1", {"Range": "bytes=0-9"})
    return response.status, [chunk async for chunk in response.body(chunk_size)]


async def test_sized_bodies_reuse_one_connection(answers: tuple[Answers, ConnectionPool]) -> None:
    server, pool = answers
    server.answers += [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"] * 2
    for _ in range(2):
        assert await _body(pool) == (200, [b"0123", b"4567", b"89"])
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /b/k?sig=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nRange: bytes=0-9\r\n" in server.requests[0]


async def test_chunked_body(answers: tuple[Answers, ConnectionPool]) -> None:
    server, pool = answers
    server.answers += [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"6\r\nabcdef\r\n3;x=y\r\nghi\r\n0\r\nTrailer: t\r\n\r\n",
                       b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    status, chunks = await _body(pool)
    assert (status, b"".join(chunks)) == (200, b"abcdefghi")
    assert all(len(chunk) <= 4 for chunk in chunks)
    assert await _body(pool) == (200, [b"ok"])
    assert server.connections == 1


async def test_an_abandoned_body_closes_its_connection(answers: tuple[Answers, ConnectionPool]) -> None:
    server, pool = answers
    server.answers += [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
                       b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    response = await pool.get("/", {})
    chunks = response.body(4)
    assert await chunks.__anext__() == b"0123"
    await chunks.aclose()
    assert pool.idle == []


async def test_a_body_cut_short_is_an_error(answers: tuple[Answers, ConnectionPool]) -> None:
    server, pool = answers
    server.answers += [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"]
    with pytest.raises(HttpGetError):
        await _body(pool)


async def test_nothing_listening_is_an_error() -> None:
    from tests.infra.http_server import free_port

    pool = ConnectionPool(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(HttpGetError, match="cannot connect"):
        await pool.get("/", {})
