"""A bounded map whose entries expire: the shape of every per-process cache of answers.

Least recently used entries go first once `max_entries` is passed, and an entry read after its
time is dropped and missed. Not thread-safe: each is used from one event loop.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringLru(Generic[K, V]):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._entries[key]
            return None
        return found[1]

    def put(self, key: K, value: V, ttl_seconds: float) -> None:
        self._entries[key] = (time.monotonic() + ttl_seconds, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def items(self) -> list[tuple[K, V]]:
        """The entries still in time, oldest first (a copy: safe to pop while walking it)."""
        now = time.monotonic()
        return [(key, value) for key, (expires, value) in self._entries.items() if expires >= now]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
