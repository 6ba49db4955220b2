"""One socket write for a small answer's head and body.

uvicorn writes a response's status line and headers as soon as the app starts the answer, and
the body when it comes: two `send()` system calls and, with TCP_NODELAY, two packets for every
small answer, which is most of what a media repository sends (cached thumbnails, previews,
errors). `CoalescingTransport` holds a small write until the end of the event loop's current
turn and sends it together with whatever is written next in that turn: the head and a body
sent right after it leave as one write. Nothing waits longer than one turn of the loop, and
large writes are never copied to be joined.
"""

from __future__ import annotations

import asyncio
from typing import Any

# A write this small may wait (one loop turn) for the next; the next is joined to it when the
# two together stay small enough that copying them costs less than a second system call.
HOLD_MAX_BYTES = 16 * 1024
JOIN_MAX_BYTES = 256 * 1024


class CoalescingTransport:
    """Wraps a connection's transport for uvicorn's protocol; everything but `write` and
    `close` goes straight to the real transport."""

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._inner = inner
        self._loop = loop
        self._held: bytes | None = None
        self._flush_handle: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        held = self._take_held()
        if held is not None:
            if len(held) + len(data) <= JOIN_MAX_BYTES:
                data = held + data
            else:
                self._inner.write(held)
        if len(data) <= HOLD_MAX_BYTES and not self._inner.is_closing():
            self._held = data
            self._flush_handle = self._loop.call_soon(self.flush)
            return
        self._inner.write(data)

    def flush(self) -> None:
        held = self._take_held()
        if held is not None and not self._inner.is_closing():
            self._inner.write(held)

    def close(self) -> None:
        self.flush()
        self._inner.close()

    def _take_held(self) -> bytes | None:
        held, self._held = self._held, None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        return held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
