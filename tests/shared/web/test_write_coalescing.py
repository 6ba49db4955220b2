"""A small answer's head and body leave in one write; nothing waits past one loop turn, large
writes are never joined, and answers over real connections are whole and in order."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from shared.config import RepoConfig
from shared.web.http_protocol import HeadLimits, protocol_with_limits
from shared.web.write_coalescing import HOLD_MAX_BYTES, JOIN_MAX_BYTES, CoalescingTransport


class RecordingTransport:
    """Pure-logic stand-in: records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_a_head_and_a_small_body_written_in_one_turn_leave_as_one_write() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


async def test_a_lone_small_write_waits_one_loop_turn_only() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"head")
    await asyncio.sleep(0)
    assert inner.writes == [b"head"]


async def test_large_writes_go_out_at_once_and_are_not_joined() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    big = b"x" * JOIN_MAX_BYTES
    transport.write(b"head")
    transport.write(big)
    assert inner.writes == [b"head", big]
    transport.write(b"y" * (HOLD_MAX_BYTES + 1))
    assert len(inner.writes) == 3


async def test_close_sends_what_is_held_first_and_nothing_is_written_after_close() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last answer")
    transport.close()
    assert inner.writes == [b"last answer"] and inner.closed
    transport.write(b"late")
    await asyncio.sleep(0)
    assert inner.writes == [b"last answer", b"late"]  # handed on; the real transport drops it
    assert transport.get_extra_info("peername") == "info:peername"


CHUNK_GAP_SECONDS = 0.4


async def streamed(_request: Request) -> Response:
    async def chunks() -> Any:
        for n in range(3):
            yield f"chunk{n};".encode()
            await asyncio.sleep(CHUNK_GAP_SECONDS)
    return StreamingResponse(chunks(), media_type="text/plain")


async def small(_request: Request) -> Response:
    return PlainTextResponse("small")


async def large(_request: Request) -> Response:
    return Response(b"z" * (3 * 1024 * 1024), media_type="application/octet-stream")


async def closing(_request: Request) -> Response:
    return PlainTextResponse("bye", headers={"Connection": "close"})


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    app = Starlette(routes=[Route("/small", small), Route("/streamed", streamed),
                            Route("/large", large), Route("/closing", closing)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            http=protocol_with_limits(HeadLimits.from_config(RepoConfig())),
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server failed to start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


async def test_answers_over_one_kept_alive_connection_are_whole_and_in_order(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url) as client:
        for _ in range(3):
            assert (await client.get("/small")).text == "small"
            assert (await client.get("/large")).content == b"z" * (3 * 1024 * 1024)
            assert (await client.head("/small")).status_code == 200
        assert (await client.get("/streamed")).text == "chunk0;chunk1;chunk2;"
        assert (await client.get("/closing")).text == "bye"
        assert (await client.get("/small")).text == "small"  # a new connection


async def test_a_streamed_answer_arrives_as_it_is_made(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url) as client, \
            client.stream("GET", "/streamed") as response:
        started = time.monotonic()
        first = await response.aiter_raw().__anext__()
        # The first chunk is not held back until the next one is made.
        assert first == b"chunk0;"
        assert time.monotonic() - started < CHUNK_GAP_SECONDS
