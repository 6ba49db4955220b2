"""What the services record, one call at each place where the work happens.

Every function is a no-op (or passes its argument straight through) when `metrics.enabled` is
off, so the calls cost nothing measurable on a process that exports nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from time import perf_counter
from typing import TYPE_CHECKING, Protocol, TypeVar

from prometheus_client import Counter

from shared.matrix.errors import NotFound, NotYetUploaded, TooLarge
from shared.metrics import definitions as m

if TYPE_CHECKING:
    from shared.runtime import Runtime


class _HasSize(Protocol):
    @property
    def size_bytes(self) -> int: ...


Fetched = TypeVar("Fetched", bound=_HasSize)
T = TypeVar("T")


def _ids(rt: Runtime) -> tuple[str, str] | None:
    """The (service, machine_id) labels, or None when this process exports no metrics."""
    if not rt.config.metrics.enabled:
        return None
    return rt.service, str(rt.machine_id)


def media_stored(rt: Runtime, size_bytes: int) -> None:
    """An upload (or a re-hosted preview image) was stored and recorded as local media."""
    if (ids := _ids(rt)) is not None:
        m.UPLOADS.labels(*ids).inc()
        m.UPLOADED_BYTES.labels(*ids).inc(size_bytes)


def metered_download(rt: Runtime, origin: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`chunks`, counting the download when its first byte is asked for and each chunk once sent.

    Nothing is counted for a body that is never read (HEAD).
    """
    if (ids := _ids(rt)) is None:
        return chunks
    labels = (*ids, "local" if rt.is_local_server(origin) else "remote")
    return _metered(chunks, m.DOWNLOADS.labels(*labels), m.DOWNLOADED_BYTES.labels(*labels))


def download_sent(rt: Runtime, origin: str, size_bytes: int) -> None:
    """A download answered in one piece (read already, or sent by nginx on our word)."""
    if (ids := _ids(rt)) is None:
        return
    labels = (*ids, "local" if rt.is_local_server(origin) else "remote")
    m.DOWNLOADS.labels(*labels).inc()
    m.DOWNLOADED_BYTES.labels(*labels).inc(size_bytes)


async def _metered(chunks: AsyncIterator[bytes], downloads: Counter, sent: Counter) -> AsyncIterator[bytes]:
    downloads.inc()
    try:
        async for chunk in chunks:
            yield chunk
            sent.inc(len(chunk))  # after the yield: the server took the chunk
    finally:
        # A client that goes away closes this wrapper; the datastore stream must close with it.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _remote_outcome(exc: Exception) -> str:
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, TooLarge):
        return "too_large"
    if isinstance(exc, NotYetUploaded):
        return "not_yet_uploaded"
    return "failed"


async def observe_remote_fetch(rt: Runtime, fetch: Awaitable[Fetched]) -> Fetched:
    """Await one federation fetch of remote media, counting its outcome and bytes."""
    if (ids := _ids(rt)) is None:
        return await fetch
    try:
        record = await fetch
    except Exception as exc:
        m.REMOTE_FETCHES.labels(*ids, _remote_outcome(exc)).inc()
        raise
    m.REMOTE_FETCHES.labels(*ids, "ok").inc()
    m.REMOTE_FETCHED_BYTES.labels(*ids).inc(record.size_bytes)
    return record


async def observe_thumbnail_generation(rt: Runtime, generation: Awaitable[T]) -> T:
    """Await one thumbnail generation, counting its outcome and timing the successful ones."""
    if (ids := _ids(rt)) is None:
        return await generation
    started = perf_counter()
    try:
        made = await generation
    except Exception:
        m.THUMBNAILS_GENERATED.labels(*ids, "failed").inc()
        raise
    m.THUMBNAIL_GENERATION.labels(*ids).observe(perf_counter() - started)
    m.THUMBNAILS_GENERATED.labels(*ids, "ok").inc()
    return made


def thumbnail_served(rt: Runtime) -> None:
    if (ids := _ids(rt)) is not None:
        m.THUMBNAILS_SERVED.labels(*ids).inc()


def url_preview(rt: Runtime, source: str, ok: bool) -> None:
    """A preview outcome was `fetched` by this process or found already stored (`cached`)."""
    if (ids := _ids(rt)) is not None:
        m.URL_PREVIEWS.labels(*ids, source, "ok" if ok else "error").inc()


def rate_limited(rt: Runtime, bucket: str) -> None:
    if (ids := _ids(rt)) is not None:
        m.RATE_LIMITED.labels(*ids, bucket).inc()


# The top-level package an exception comes from names the dependency that raised it.
_DEPENDENCY_OF_PACKAGE = {
    "sqlalchemy": "database", "psycopg": "database", "asyncpg": "database",
    "aiosqlite": "database", "sqlite3": "database",
    "redis": "redis", "botocore": "s3", "boto3": "s3", "aiobotocore": "s3",
}


def classify_dependency_error(exc: BaseException) -> tuple[str, str]:
    """(dependency, kind) of `exc` or of the first exception it was raised from."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        package = type(seen).__module__.split(".", 1)[0]
        if package in _DEPENDENCY_OF_PACKAGE:
            return _DEPENDENCY_OF_PACKAGE[package], type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return "other", type(exc).__name__


def dependency_error(rt: Runtime | None, exc: BaseException) -> None:
    """Count an error by the dependency that raised it (nothing when metrics are off)."""
    if rt is None or (ids := _ids(rt)) is None:
        return
    dependency, kind = classify_dependency_error(exc)
    m.DEPENDENCY_ERRORS.labels(*ids, dependency, kind).inc()


def lock_kind(name: str) -> str:
    """A bounded label for lock `name`: its prefix (`upload` is the hash lock, `quota`,
    `create`, ...), singleflight locks as `sf:<kind>` (`sf:thumb`, `sf:remote`, `sf:preview`)."""
    head, _, rest = name.partition(":")
    if head == "sf":
        return "sf:" + rest.partition(":")[0]
    return head


class CoordinationMetrics:
    """Lock waits and swallowed Redis errors of one process (a `CoordinationObserver`)."""

    def __init__(self, service: str, machine_id: int) -> None:
        self._ids = (service, str(machine_id))

    def lock_waited(self, name: str, outcome: str, seconds: float) -> None:
        m.LOCK_WAIT.labels(*self._ids, lock_kind(name), outcome).observe(seconds)

    def backend_error(self, exc: BaseException) -> None:
        dependency, kind = classify_dependency_error(exc)
        # A CoordinatorUnavailable without a Redis cause is still Redis being away.
        m.DEPENDENCY_ERRORS.labels(*self._ids, "redis" if dependency == "other" else dependency,
                                   kind).inc()


def coordination_metrics(enabled: bool, service: str, machine_id: int) -> CoordinationMetrics | None:
    return CoordinationMetrics(service, machine_id) if enabled else None


def task_finished(rt: Runtime, task: str, failed: bool) -> None:
    if (ids := _ids(rt)) is not None:
        m.TASKS_FINISHED.labels(*ids, task, "failed" if failed else "ok").inc()
