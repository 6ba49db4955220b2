"""The `multipart/mixed` body of the federation media endpoints, written and read as streams.

The spec's answer has exactly two parts: a JSON metadata object (always `{}` today), then either
the media bytes with their own Content-Type/Content-Disposition or a part whose `Location` header
points at the bytes. Media can be gigabytes, so neither side ever holds a whole part in memory.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

CRLF = b"\r\n"
MAX_METADATA_BYTES = 64 * 1024
"""Part 1 is a small JSON object; anything bigger is a broken or hostile peer."""


class MultipartError(Exception):
    """The body is not a well-formed two-part federation media answer."""


def new_boundary() -> str:
    return uuid.uuid4().hex


def multipart_content_type(boundary: str) -> str:
    return f"multipart/mixed; boundary={boundary}"


def _headers_block(headers: Mapping[str, str]) -> bytes:
    lines = [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    return CRLF.join(lines) + CRLF + CRLF


async def write_media_multipart(
    boundary: str,
    media_headers: Mapping[str, str],
    body: AsyncIterator[bytes] | None,
    metadata: Mapping[str, Any] | None = None,
) -> AsyncIterator[bytes]:
    """Yield the two-part answer: `metadata` as JSON, then `body` under `media_headers`.

    For the redirect form pass `media_headers={"Location": url}` and `body=None`.
    """
    delimiter = b"--" + boundary.encode("ascii")
    yield delimiter + CRLF + _headers_block({"Content-Type": "application/json"})
    yield json.dumps(dict(metadata or {})).encode() + CRLF
    yield delimiter + CRLF + _headers_block(media_headers)
    if body is not None:
        async for chunk in body:
            if chunk:
                yield chunk
    yield CRLF + delimiter + b"--" + CRLF


def boundary_of(content_type: str) -> str | None:
    """The boundary of a `multipart/mixed` Content-Type, or None for any other type."""
    kind, params = parse_options_header(content_type)
    if kind.lower() != b"multipart/mixed":
        return None
    boundary = params.get(b"boundary")
    return boundary.decode("latin-1") if boundary else None


@dataclass
class MediaPart:
    """Part 2 of the answer: its headers (lower-cased names) and a stream of its bytes."""

    metadata: dict[str, Any]
    headers: dict[str, str]
    body: AsyncIterator[bytes]

    @property
    def location(self) -> str | None:
        return self.headers.get("location")


class _Events:
    """Feeds chunks to the sans-IO parser and hands back its callbacks as a queue of events."""

    def __init__(self, boundary: str, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._queue: deque[tuple[str, bytes]] = deque()
        self._field = bytearray()
        self._value = bytearray()
        self._finished = False
        self._parser = MultipartParser(boundary.encode("latin-1"), {
            "on_part_begin": lambda: self._queue.append(("begin", b"")),
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self._queue.append(("headers_done", b"")),
            "on_part_data": lambda d, s, e: self._queue.append(("data", bytes(d[s:e]))),
            "on_part_end": lambda: self._queue.append(("end", b"")),
            "on_end": lambda: self._queue.append(("eof", b"")),
        })

    def _header_end(self) -> None:
        self._queue.append(("header", bytes(self._field) + b"\0" + bytes(self._value)))
        self._field.clear()
        self._value.clear()

    async def next(self) -> tuple[str, bytes]:
        while not self._queue:
            if self._finished:
                raise MultipartError("the multipart body ended early")
            try:
                chunk = await anext(self._chunks)
                self._parser.write(chunk)
            except StopAsyncIteration:
                self._finished = True
                self._parser.finalize()
            except MultipartParseError as exc:
                raise MultipartError(f"malformed multipart body: {exc}") from exc
        return self._queue.popleft()


async def _read_headers(events: _Events) -> dict[str, str]:
    kind, _ = await events.next()
    if kind != "begin":
        raise MultipartError("expected another part")
    headers: dict[str, str] = {}
    while True:
        kind, value = await events.next()
        if kind == "headers_done":
            return headers
        if kind != "header":
            raise MultipartError("malformed part headers")
        name, _, text = value.partition(b"\0")
        headers[name.decode("latin-1").strip().lower()] = text.decode("latin-1").strip()


async def _read_metadata(events: _Events) -> dict[str, Any]:
    headers = await _read_headers(events)
    if not headers.get("content-type", "").lower().startswith("application/json"):
        raise MultipartError("the first part is not application/json")
    raw = bytearray()
    while True:
        kind, value = await events.next()
        if kind == "end":
            break
        raw.extend(value)
        if len(raw) > MAX_METADATA_BYTES:
            raise MultipartError("the metadata part is too large")
    try:
        metadata = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:  # RecursionError: `[[[[...` nested too deep
        raise MultipartError("the metadata part is not JSON") from exc
    if not isinstance(metadata, dict):
        raise MultipartError("the metadata part is not a JSON object")
    return metadata


async def _part_body(events: _Events) -> AsyncIterator[bytes]:
    while True:
        kind, value = await events.next()
        if kind == "end":
            return
        yield value


async def read_media_multipart(boundary: str, chunks: AsyncIterator[bytes]) -> MediaPart:
    """Parse part 1 (metadata) and part 2's headers; part 2's bytes stream from `.body`.

    Reading `.body` to its end consumes the rest of `chunks`; a body cut short raises
    `MultipartError` there, so a truncated transfer can never pass for complete media.
    """
    events = _Events(boundary, chunks)
    metadata = await _read_metadata(events)
    headers = await _read_headers(events)
    return MediaPart(metadata=metadata, headers=headers, body=_part_body(events))
