"""Generating a thumbnail: once, cluster-wide, by a worker, stored by the one writer.

A missing thumbnail is generated under `singleflight`: however many requests on however many
thumbnail processes ask at the same moment, one of them copies the source to a private temp
folder (an object the datastore has as a local file is read in place), has a worker render the
thumbnail (`worker.render`), and hands it to `shared.media.store.store_thumbnail`, which stores
it under its content hash and records the row; the others then find that row. A source that
failed is remembered for a few minutes, so a hostile file cannot make the cluster decode it
again and again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from services.thumbnail.context import ThumbnailContext
from services.thumbnail.sizing import Target
from services.thumbnail.worker.jobs import (
    CorruptMedia,
    SourceTooLarge,
    ThumbnailFailure,
    ThumbnailJob,
    ThumbnailOutput,
    UnsupportedMedia,
)
from services.thumbnail.worker.pool import (
    WorkerCrashed,
    WorkerFailure,
    WorkerJobError,
    WorkerLost,
    WorkerOutOfMemory,
    WorkerOverCpu,
    WorkerTimedOut,
)
from services.thumbnail.worker.render import render_thumbnail
from shared.coordination.singleflight import singleflight
from shared.db.repositories.media import MediaRecord
from shared.db.repositories.thumbnails import ThumbnailKey, ThumbnailRecord, get_thumbnail
from shared.matrix.disposition import media_type
from shared.media.store import ThumbnailWrite, store_thumbnail
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.storage.spool import SpoolTooLarge, spool_to_temp

log = logging.getLogger(__name__)

FAILURE_CACHE_SECONDS = 300.0
SOURCE_CHUNK_BYTES = 1024 * 1024
LOCK_TTL_SECONDS = 30.0
HASH_CHUNK_BYTES = 1024 * 1024
INLINE_HASH_MAX_BYTES = 256 * 1024

_REMEMBERED: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (UnsupportedMedia, CorruptMedia, SourceTooLarge, WorkerCrashed, WorkerOverCpu,
                WorkerTimedOut, WorkerOutOfMemory, WorkerJobError)
}


@dataclass(frozen=True)
class GenerationRequest:
    source: MediaRecord
    target: Target
    animated: bool

    @property
    def key(self) -> ThumbnailKey:
        t = self.target
        return ThumbnailKey(self.source.origin, self.source.media_id, t.width, t.height, t.method,
                            self.animated)

    @property
    def flight(self) -> str:
        k = self.key
        return f"thumb:{k.origin}/{k.media_id}/{k.width}x{k.height}/{k.method}/{int(k.animated)}"

    @property
    def failure_key(self) -> str:
        t = self.target
        return f"thumbfail:{self.source.sha256}/{t.width}x{t.height}/{t.method}/{int(self.animated)}"


async def find_stored(rt: Runtime, key: ThumbnailKey) -> ThumbnailRecord | None:
    async with rt.sessions() as session:
        return await get_thumbnail(session, key)


async def stored_or_generated(
    rt: Runtime, ctx: ThumbnailContext, req: GenerationRequest, *, just_missed: bool = False
) -> ThumbnailRecord:
    """The stored thumbnail for `req`, generating it once cluster-wide when there is none.

    `just_missed`: the caller has just looked for it, so only the look-up once the generation
    lock is held (another process may have finished it meanwhile) asks the database again.
    Raises `ThumbnailFailure` / `WorkerFailure` when the source cannot be thumbnailed.
    """
    await _raise_remembered_failure(rt, req)
    wait = ctx.pool.limits.timeout_seconds * 2 + 60
    return await singleflight(
        rt.coordinator,
        req.flight,
        compute=lambda: metrics.observe_thumbnail_generation(
            rt, _generate_remembering_failure(rt, ctx, req)),
        lookup=_after_a_miss(rt, req.key) if just_missed else lambda: find_stored(rt, req.key),
        ttl_seconds=LOCK_TTL_SECONDS,
        wait_seconds=wait,
    )


def _after_a_miss(rt: Runtime, key: ThumbnailKey) -> Callable[[], Awaitable[ThumbnailRecord | None]]:
    """`find_stored`, except its first call, which answers the miss the caller has just seen."""
    calls = 0

    async def lookup() -> ThumbnailRecord | None:
        nonlocal calls
        calls += 1
        return None if calls == 1 else await find_stored(rt, key)

    return lookup


async def _raise_remembered_failure(rt: Runtime, req: GenerationRequest) -> None:
    cached = await rt.coordinator.cache_get(req.failure_key)
    if cached is None:
        return
    kind, message = json.loads(cached)
    raise _REMEMBERED.get(kind, WorkerJobError)(message)


async def _generate_remembering_failure(
    rt: Runtime, ctx: ThumbnailContext, req: GenerationRequest
) -> ThumbnailRecord:
    try:
        return await _generate(rt, ctx, req)
    except WorkerLost:
        raise  # not the input's fault: never remembered
    except (ThumbnailFailure, WorkerFailure) as exc:
        remembered = json.dumps([type(exc).__name__, str(exc)]).encode()
        await rt.coordinator.cache_set(req.failure_key, remembered, FAILURE_CACHE_SECONDS)
        raise


async def _generate(rt: Runtime, ctx: ThumbnailContext, req: GenerationRequest) -> ThumbnailRecord:
    limit = rt.request_config.thumbnails.max_source_bytes
    if limit and req.source.size_bytes > limit:
        raise SourceTooLarge(f"The media is larger than the {limit} bytes that can be thumbnailed")
    # One private folder per job: whatever a crashed worker left behind goes with it.
    prefix = f"thumbjob-{rt.temp_tag}-"  # swept by this machine's successor after a crash
    # One mkdir in the local temp folder: less than the thread hop that would wait for it.
    job_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=rt.temp_dir))
    try:
        source = await _source_file(rt, req.source, job_dir, limit)
        job = _job(rt, ctx, req, source, job_dir)
        try:
            output = await ctx.pool.run(render_thumbnail, job)
        except WorkerLost as exc:  # once more, on a fresh worker (the lost one is retired)
            log.warning("retrying a thumbnail job once after %s", exc)
            output = await ctx.pool.run(render_thumbnail, job)
        return await _store_and_record(rt, req, output, source)
    finally:
        # Not waited for: nothing in the folder is used any more (the thumbnail was moved out),
        # and a leftover is swept after a crash (`prefix`).
        asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, job_dir, True)


@dataclass(frozen=True)
class SourceFile:
    """The source's bytes as a file a worker can open."""

    path: Path
    sha256: str
    size_bytes: int
    # False for a stored object read in place: the writer must never move that one.
    disposable: bool = False


async def _source_file(rt: Runtime, record: MediaRecord, job_dir: Path, limit: int) -> SourceFile:
    store = rt.datastores.get(record.datastore_id)
    # A file on this machine is read in place: no copy needed (workers only read).
    in_place = await store.local_path(record.location)
    if in_place is not None:
        return SourceFile(in_place, record.sha256, record.size_bytes)
    chunks = store.open_stream(record.location, chunk_size=SOURCE_CHUNK_BYTES)
    try:
        spooled = await spool_to_temp(chunks, job_dir, limit or None, rt.temp_tag)
    except SpoolTooLarge as exc:
        raise SourceTooLarge(f"The media is larger than the {limit} bytes that can be thumbnailed") from exc
    return SourceFile(spooled.path, spooled.sha256, spooled.size_bytes, disposable=True)


def _job(rt: Runtime, ctx: ThumbnailContext, req: GenerationRequest, source: SourceFile,
         job_dir: Path) -> ThumbnailJob:
    config = rt.request_config.thumbnails
    # Animating a large source costs far more than a still: past the limit it gets a still.
    animated = req.animated and source.size_bytes <= config.max_animate_size_bytes
    return ThumbnailJob(
        source_path=str(source.path),
        content_type=media_type(req.source.content_type),
        output_dir=str(job_dir),
        target=req.target,
        animated=animated,
        max_pixels=config.max_pixels,
        still_frame=config.still_frame,
        image_formats=ctx.image_formats,
    )


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def _store_and_record(
    rt: Runtime, req: GenerationRequest, output: ThumbnailOutput, source: SourceFile
) -> ThumbnailRecord:
    if output.path is None:  # the source itself is the thumbnail
        made = source
    else:
        path = Path(output.path)
        # A thumbnail is usually a few KiB, hashed in microseconds: a thread hop costs more.
        small = path.stat().st_size <= INLINE_HASH_MAX_BYTES
        sha256, size = _hash_file(path) if small else await asyncio.to_thread(_hash_file, path)
        made = SourceFile(path, sha256, size, disposable=True)  # the job folder goes anyway
    return await store_thumbnail(rt, ThumbnailWrite(req.key, output.content_type), made)
