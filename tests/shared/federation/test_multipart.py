"""The federation multipart body: what we write is what we (and the spec's peers) read back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from shared.federation.multipart import (
    MultipartError,
    boundary_of,
    multipart_content_type,
    new_boundary,
    read_media_multipart,
    write_media_multipart,
)


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def _written(boundary: str, headers: dict[str, str], body: bytes | None) -> bytes:
    source = _chunks(body, 4096) if body is not None else None
    return await _collect(write_media_multipart(boundary, headers, source))


async def test_the_written_body_has_exactly_the_spec_layout() -> None:
    body = await _written("B", {"Content-Type": "image/png",
                                "Content-Disposition": "inline; filename=a.png"}, b"PNG")
    assert body == (
        b"--B\r\nContent-Type: application/json\r\n\r\n{}\r\n"
        b"--B\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename=a.png\r\n\r\n"
        b"PNG\r\n--B--\r\n"
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 65536])
async def test_bytes_round_trip_whatever_the_chunking(chunk_size: int) -> None:
    boundary = new_boundary()
    media = bytes(range(256)) * 200 + b"\r\n--" + boundary.encode()[:-1]  # almost a delimiter
    written = await _written(boundary, {"Content-Type": "application/x-test"}, media)
    part = await read_media_multipart(boundary, _chunks(written, chunk_size))
    assert part.metadata == {}
    assert part.headers["content-type"] == "application/x-test"
    assert part.location is None
    assert await _collect(part.body) == media


async def test_the_location_form_carries_a_url_and_no_bytes() -> None:
    written = await _written("xyz", {"Location": "https://cdn.example/abc?sig=1"}, None)
    part = await read_media_multipart("xyz", _chunks(written, 5))
    assert part.location == "https://cdn.example/abc?sig=1"
    assert await _collect(part.body) == b""


async def test_a_peer_body_with_metadata_and_odd_spacing_is_read() -> None:
    raw = (b"--b1\r\ncontent-type:application/json; charset=utf-8\r\n\r\n"
           + json.dumps({"k": 1}).encode()
           + b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--")
    part = await read_media_multipart("b1", _chunks(raw, 3))
    assert part.metadata == {"k": 1}
    assert await _collect(part.body) == b"hello"


async def test_a_truncated_body_is_an_error_not_short_media() -> None:
    written = await _written("B", {"Content-Type": "text/plain"}, b"x" * 10000)
    part = await read_media_multipart("B", _chunks(written[:-2000], 512))
    with pytest.raises(MultipartError):
        await _collect(part.body)


@pytest.mark.parametrize("raw", [
    b"--B\r\nContent-Type: text/plain\r\n\r\n{}\r\n--B--\r\n",            # first part not JSON
    b"--B\r\nContent-Type: application/json\r\n\r\n[1]\r\n--B--\r\n",      # JSON, not an object
    b"--B\r\nContent-Type: application/json\r\n\r\n{}\r\n--B--\r\n",       # no second part
    b"garbage",
])
async def test_malformed_bodies_are_refused(raw: bytes) -> None:
    with pytest.raises(MultipartError):
        part = await read_media_multipart("B", _chunks(raw, 4))
        await _collect(part.body)


def test_the_boundary_is_read_from_the_content_type() -> None:
    assert boundary_of(multipart_content_type("abc")) == "abc"
    assert boundary_of('Multipart/Mixed; boundary="q u o"') == "q u o"
    assert boundary_of("image/png") is None
    assert boundary_of("multipart/mixed") is None
