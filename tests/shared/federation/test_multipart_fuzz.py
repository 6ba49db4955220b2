"""Hypothesis over malformed federation multipart bodies: whatever a hostile peer sends, reading
it ends in a parsed answer or `MultipartError`, never another exception, however it is split."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.federation.multipart import MultipartError, read_media_multipart

BOUNDARY = "6f1e8c"
VALID = (
    b"--6f1e8c\r\nContent-Type: application/json\r\n\r\n{}\r\n"
    b"--6f1e8c\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n\r\n"
    b"\x89PNG-bytes\r\n--6f1e8c--\r\n"
)
PIECES = [b"--6f1e8c", b"--6f1e8c--", b"\r\n", b"\r\n\r\n", b"Content-Type: application/json",
          b"Location: https://x/y", b"{}", b"[", b"{\"a\":", b"\xff\xfe", b"\x00", b":", b"-",
          b"Content-Type:", b" " * 3]


async def _split(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[start:cut]
        start = cut
    yield data[start:]


def _mutated(data: st.DrawFn) -> bytes:
    body = bytearray(VALID)
    for _ in range(data(st.integers(1, 6))):
        position = data(st.integers(0, len(body)))
        action = data(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        piece = data(st.sampled_from(PIECES) | st.binary(max_size=12))
        if action == "insert":
            body[position:position] = piece
        elif action == "delete":
            del body[position:position + data(st.integers(1, 16))]
        elif action == "replace":
            body[position:position + len(piece)] = piece
        else:
            del body[position:]
    return bytes(body)


bodies = st.one_of(
    st.composite(_mutated)(),
    st.binary(max_size=300),
    # Deeply nested metadata, complete and within the size limit.
    st.builds(lambda n: b"--6f1e8c\r\nContent-Type: application/json\r\n\r\n" + b"[" * n
              + b"]" * n + b"\r\n--6f1e8c\r\nContent-Type: image/png\r\n\r\nx\r\n--6f1e8c--\r\n",
              st.integers(1, 30000)),
)


async def _read(body: bytes, cuts: list[int]) -> None:
    try:
        part = await read_media_multipart(BOUNDARY, _split(body, cuts))
        async for _chunk in part.body:
            pass
    except MultipartError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, cuts=st.lists(st.integers(0, 10**6), max_size=6))
def test_malformed_bodies_fail_only_with_multipart_error(body: bytes, cuts: list[int]) -> None:
    asyncio.run(_read(body, cuts))
