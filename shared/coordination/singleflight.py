"""Do an expensive thing once, however many callers in however many processes ask at once.

Used for thumbnail generation, remote media fetches and URL previews: when twenty requests for the
same missing thumbnail arrive together, one of them generates it and the rest get its result.

    thumb = await singleflight(
        coord,
        f"thumb:{media_id}:{w}x{h}:{method}",
        compute=lambda: generate_and_store(...),   # produces AND persists the result
        lookup=lambda: find_stored_thumbnail(...),  # returns None on a miss
    )

How it works:

1. In-process fast path: concurrent callers in this process with the same `key` share one task,
   so they cost one lookup and at most one lock wait between them.
2. That task calls `lookup()`; a hit (anything but None) is returned straight away.
3. Otherwise it takes the cluster lock `sf:<key>` and calls `lookup()` again: another process may
   have computed the result while we waited for the lock.
4. Still a miss: `compute()` runs while holding the lock.

Requirements on the callables:

* `compute()` must persist its result where `lookup()` will find it (database, storage, cache)
  before returning; that is how other processes get the result. Its return value goes only to the
  callers in this process.
* `lookup()` returns None for "not there yet", so a result can never be None.
* Every caller of one key must pass equivalent callables: only the first caller's are run.
* The result object is shared by all concurrent callers in the process: don't mutate it.

Cancelling a caller does not cancel the shared work (others may be waiting for it, and a finished
result is stored for the next request anyway). Errors, including `LockNotAcquired` after
`wait_seconds`, reach every caller that was waiting and are not cached: the next call retries.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .base import Coordinator

T = TypeVar("T")

# coordinator -> key -> the task computing it. Keyed per coordinator (not globally) so that two
# coordinators in one process behave like two processes, which is what the tests rely on.
_inflight: weakref.WeakKeyDictionary[Any, dict[str, asyncio.Task[Any]]] = (
    weakref.WeakKeyDictionary()
)


async def singleflight(
    coord: Coordinator,
    key: str,
    compute: Callable[[], Awaitable[T]],
    lookup: Callable[[], Awaitable[T | None]],
    ttl_seconds: float = 30.0,
    wait_seconds: float = 60.0,
) -> T:
    """Return `lookup()`'s hit, or compute it once cluster-wide. See the module docstring.

    `ttl_seconds` is how long the lock outlives a crashed holder (a live holder renews it);
    `wait_seconds` is how long to wait for another holder before raising `LockNotAcquired`.
    """
    flights = _inflight.setdefault(coord, {})
    task = flights.get(key)
    if task is None:
        task = asyncio.create_task(
            _lookup_or_compute(coord, key, compute, lookup, ttl_seconds, wait_seconds),
            name=f"singleflight:{key}",
        )
        flights[key] = task
        task.add_done_callback(lambda done: _finished(flights, key, done))
    result: T = await asyncio.shield(task)
    return result


async def _lookup_or_compute(
    coord: Coordinator,
    key: str,
    compute: Callable[[], Awaitable[T]],
    lookup: Callable[[], Awaitable[T | None]],
    ttl_seconds: float,
    wait_seconds: float,
) -> T:
    found = await lookup()
    if found is not None:
        return found
    async with coord.lock(f"sf:{key}", ttl_seconds=ttl_seconds, wait_seconds=wait_seconds):
        # Whoever held the lock before us has probably just stored the result.
        found = await lookup()
        if found is not None:
            return found
        return await compute()


def _finished(flights: dict[str, asyncio.Task[Any]], key: str, task: asyncio.Task[Any]) -> None:
    if flights.get(key) is task:
        del flights[key]
    # Mark the exception as retrieved: if every caller was cancelled nobody else will, and asyncio
    # would log "Task exception was never retrieved".
    if not task.cancelled():
        task.exception()
