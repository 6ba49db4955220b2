"""Thumbnail pipeline: find the source, snap the size, serve the stored thumbnail or make it once.

No FastAPI here: routes parse HTTP and call `run` with plain values. The client, legacy and
federation routes all come through `run`, so they answer with the same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from services.thumbnail import responses
from services.thumbnail.context import ThumbnailContext
from services.thumbnail.generate import GenerationRequest, stored_or_generated
from services.thumbnail.responses import ThumbnailResponse
from services.thumbnail.sizing import Method, Target, snap
from services.thumbnail.worker.formats import thumbnailable
from services.thumbnail.worker.jobs import SourceTooLarge, ThumbnailFailure
from services.thumbnail.worker.pool import (
    WorkerCrashed,
    WorkerFailure,
    WorkerLost,
    WorkerOutOfMemory,
    WorkerOverCpu,
    WorkerTimedOut,
)
from shared.config import HomeserverConfig, ThumbnailsConfig
from shared.db.repositories.media import MediaRecord, get_media
from shared.db.repositories.thumbnails import ThumbnailKey, ThumbnailRecord, get_thumbnail
from shared.matrix.disposition import media_type
from shared.matrix.errors import BadRequest, MatrixError, TooLarge
from shared.media import source
from shared.media.source import SourceRequest
from shared.runtime import Runtime
from shared.web.conditional import NotModified, not_modified

log = logging.getLogger(__name__)

LOST_WORKER_RETRY_AFTER_SECONDS = 5

__all__ = ["ThumbnailParams", "ThumbnailRequest", "ThumbnailResponse", "run"]


@dataclass(frozen=True)
class ThumbnailParams:
    """What every thumbnail route's query asks for."""

    width: int
    height: int
    method: Method
    animated: bool | None
    timeout_ms: int | None


@dataclass(frozen=True)
class ThumbnailRequest:
    server_name: str
    media_id: str
    params: ThumbnailParams
    allow_remote: bool
    allow_redirect: bool
    # The deprecated unauthenticated routes may not serve media uploaded while frozen.
    authenticated_route: bool
    # The homeserver the request came through: its signing key signs a remote fetch.
    via: HomeserverConfig | None = None
    if_none_match: str | None = None

    @property
    def source(self) -> SourceRequest:
        return SourceRequest(self.server_name, self.media_id,
                             authenticated_route=self.authenticated_route,
                             allow_remote=self.allow_remote, timeout_ms=self.params.timeout_ms,
                             via=self.via, endpoint="thumbnail")


def _wants_animation(config: ThumbnailsConfig, asked: bool | None) -> bool:
    if not config.allow_animated:
        return False
    return config.default_animated if asked is None else asked


async def _look_up(
    rt: Runtime, req: ThumbnailRequest, target: Target, animated: bool
) -> tuple[MediaRecord | None, ThumbnailRecord | None]:
    """The media's record (from this process's record cache when it is there: changes are
    announced) and its stored thumbnail, in one session."""
    records = rt.media_records
    await records.ensure_listening(rt.coordinator)
    record = records.get(req.server_name, req.media_id)
    generation = records.generation
    async with rt.sessions() as session:
        if record is None:
            record = await get_media(session, req.server_name, req.media_id)
            if record is None:
                return None, None
            records.put(record, generation)
        key = ThumbnailKey(record.origin, record.media_id, target.width, target.height,
                           target.method, animated)
        return record, await get_thumbnail(session, key)


def _as_matrix_error(exc: ThumbnailFailure | WorkerFailure, remote: bool) -> MatrixError:
    """The spec's answers: 413 M_TOO_LARGE (502 for remote media) for what is too big or too
    costly to thumbnail, 400 M_UNKNOWN for what cannot be thumbnailed."""
    if isinstance(exc, WorkerLost):  # lost twice in a row: the machine is in trouble, not the media
        return MatrixError(503, "M_UNKNOWN", "Thumbnailing is unavailable right now, try again",
                           headers={"Retry-After": str(LOST_WORKER_RETRY_AFTER_SECONDS)})
    too_costly = (SourceTooLarge, WorkerOutOfMemory, WorkerOverCpu, WorkerTimedOut)
    if isinstance(exc, too_costly):
        return TooLarge(str(exc), status=502 if remote else 413)
    if isinstance(exc, ThumbnailFailure | WorkerCrashed):
        return BadRequest(f"The media cannot be thumbnailed: {exc}")
    log.error("thumbnail job failed unexpectedly: %s", exc)
    return MatrixError(500, "M_UNKNOWN", "The thumbnail could not be made")


async def _generate(
    rt: Runtime, ctx: ThumbnailContext, record: MediaRecord, target: Target, animated: bool
) -> ThumbnailRecord:
    content_type = media_type(record.content_type)
    if not thumbnailable(content_type, rt.request_config.thumbnails.types):
        raise BadRequest(f"Thumbnails of {content_type or 'this media'} are not supported")
    try:
        request = GenerationRequest(record, target, animated)
        return await stored_or_generated(rt, ctx, request, just_missed=True)
    except (ThumbnailFailure, WorkerFailure) as exc:
        raise _as_matrix_error(exc, remote=not rt.is_local_server(record.origin)) from exc


async def run(rt: Runtime, req: ThumbnailRequest) -> ThumbnailResponse | NotModified:
    config = rt.request_config.thumbnails
    # Step 1 (`shared.media.source`, shared with downloads): valid IDs of a served host; our
    # own name in another case (`LOCALHOST`) is ours.
    server_name = source.check_request(rt, req.source).server_name
    if server_name != req.server_name:
        req = replace(req, server_name=server_name)
    # Step 2: snap the request to the size thumbnails are made and stored at.
    asked = req.params
    target = snap(asked.width, asked.height, asked.method, config.sizes, config.dynamic_sizing)
    animated = _wants_animation(config, asked.animated)
    ctx = rt.part(ThumbnailContext)
    media = (req.server_name, req.media_id)
    question = (target, animated, req.authenticated_route)
    # Step 3: a request answered a moment ago is answered the same way, without the database.
    await ctx.lookups.listen(rt.coordinator)
    thumb = ctx.lookups.get(media, question)
    if thumb is None:
        # Step 4: the source's record and, when it was made before, the thumbnail's.
        record, thumb = await _look_up(rt, req, target, animated)
        # Step 5 (`shared.media.source`): not recorded yet: wait for an async upload, or fetch
        # remote media once; media frozen for the legacy routes is not there for them.
        record = await source.servable(rt, req.source, record)
        # Step 6: quarantined media gets the placeholder image (or nothing).
        if record.quarantined:
            return await responses.placeholder(rt, target)
        # Step 7: a missing thumbnail is made once cluster-wide (types the operator allows).
        thumb = thumb or await _generate(rt, ctx, record, target, animated)
        ctx.lookups.put(media, question, thumb)
    # Step 8: a client that has these bytes already gets a 304.
    headers = responses.stored_headers(thumb)
    if (unchanged := not_modified(req.if_none_match, headers.fields)) is not None:
        return unchanged
    # Step 9: note the access for retention, then the bytes (or a redirect to them).
    rt.access.record(req.server_name, req.media_id)
    return await responses.stored(rt, ctx, thumb, headers, req.allow_redirect)
