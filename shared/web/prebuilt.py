"""Responses whose headers were encoded once, for answers sent again and again unchanged (a warm
thumbnail): Starlette's `Response` lowercases, encodes and scans every header of every answer
anew, which is a measurable share of a request that is otherwise a dictionary lookup."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

EncodedHeaders = tuple[tuple[bytes, bytes], ...]


def encode_headers(headers: Mapping[str, str]) -> EncodedHeaders:
    """`headers` as ASGI wants them, names lowercased (as Starlette sends them)."""
    return tuple((name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in headers.items())


class PrebuiltResponse(Response):
    """A whole body with headers encoded before (`encode_headers`), sent as given: they must
    hold the Content-Type, and not the Content-Length, which is the body's."""

    def __init__(self, body: bytes, headers: EncodedHeaders, status_code: int = 200) -> None:
        super().__init__(body, status_code)  # no headers to encode: only the Content-Length
        self.raw_headers[0:0] = headers
