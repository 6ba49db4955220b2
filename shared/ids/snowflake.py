"""Snowflake IDs: 41-bit millisecond timestamp, 10-bit machine ID, 12-bit sequence.

The epoch is Twitter's (1288834974657), as in matrix-media-repo, so IDs sort by time and two
machines with different MACHINE_IDs can never produce the same value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EPOCH_MS = 1288834974657
MACHINE_BITS = 10
SEQUENCE_BITS = 12
MAX_MACHINE_ID = (1 << MACHINE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SnowflakeGenerator:
    """Thread-safe generator of 63-bit snowflake IDs for one machine.

    When the clock steps backwards it waits until time passes the last issued timestamp rather
    than risk issuing a duplicate.
    """

    def __init__(
        self,
        machine_id: int,
        clock: Callable[[], int] = _now_ms,
        sleep: Callable[[float], None] = time.sleep,
        guard: Callable[[], None] | None = None,
    ) -> None:
        if not 0 <= machine_id <= MAX_MACHINE_ID:
            raise ValueError(f"machine ID must be 0..{MAX_MACHINE_ID}, got {machine_id}")
        self.machine_id = machine_id
        self._clock = clock
        self._sleep = sleep
        # Raises when this process may not mint right now (its machine-ID lease lapsed).
        self._guard = guard
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def _wait_until_after(self, ms: int) -> int:
        now = self._clock()
        while now <= ms:
            self._sleep(max(ms - now, 1) / 1000)
            now = self._clock()
        return now

    def next_id(self) -> int:
        if self._guard is not None:
            self._guard()
        with self._lock:
            now = self._clock()
            if now < self._last_ms:
                now = self._wait_until_after(self._last_ms - 1)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    now = self._wait_until_after(self._last_ms)
            else:
                self._sequence = 0
            self._last_ms = now
            return ((now - EPOCH_MS) << (MACHINE_BITS + SEQUENCE_BITS)) | (
                self.machine_id << SEQUENCE_BITS
            ) | self._sequence


def decompose(snowflake: int) -> tuple[int, int, int]:
    """(unix ms timestamp, machine ID, sequence) of an ID."""
    sequence = snowflake & MAX_SEQUENCE
    machine = (snowflake >> SEQUENCE_BITS) & MAX_MACHINE_ID
    ts = (snowflake >> (MACHINE_BITS + SEQUENCE_BITS)) + EPOCH_MS
    return ts, machine, sequence
