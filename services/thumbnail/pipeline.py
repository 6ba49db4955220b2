"""Thumbnail pipeline: find the source, snap the size, serve the stored thumbnail or make it once.

No FastAPI here: routes parse HTTP and call `run` with plain values. The client, legacy and
federation routes all come through `run`, so they answer with the same bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from services.thumbnail import answers
from services.thumbnail.answers import ThumbnailAnswer
from services.thumbnail.context import ThumbnailContext, context_of
from services.thumbnail.formats import normalise, thumbnailable
from services.thumbnail.generation import GenerationRequest, stored_or_generated
from services.thumbnail.jobs import SourceTooLarge, ThumbnailFailure
from services.thumbnail.sizing import Method, Target, snap
from services.thumbnail.workers import (
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
from shared.ids.media_id import is_valid_media_id, is_valid_server_name
from shared.matrix.errors import BadRequest, MatrixError, NotFound, TooLarge
from shared.media.access import record_access
from shared.media.pending import wait_for_pending_media
from shared.media.remote import fetch_remote_media, is_ignored_host
from shared.runtime import Runtime

log = logging.getLogger(__name__)

LOST_WORKER_RETRY_AFTER_SECONDS = 5

__all__ = ["ThumbnailAnswer", "ThumbnailParams", "ThumbnailRequest", "run"]


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


def _wants_animation(config: ThumbnailsConfig, asked: bool | None) -> bool:
    if not config.allow_animated:
        return False
    return config.default_animated if asked is None else asked


async def _look_up(
    rt: Runtime, req: ThumbnailRequest, target: Target, animated: bool
) -> tuple[MediaRecord | None, ThumbnailRecord | None]:
    """The media's record and its stored thumbnail, in one session: the warm path's only I/O."""
    async with rt.sessions() as session:
        record = await get_media(session, req.server_name, req.media_id)
        if record is None:
            return None, None
        key = ThumbnailKey(record.origin, record.media_id, target.width, target.height,
                           target.method, animated)
        return record, await get_thumbnail(session, key)


async def _find_source(rt: Runtime, req: ThumbnailRequest) -> MediaRecord:
    """Media not recorded yet: a pending async upload (waited for), or remote media to fetch."""
    if rt.is_local_server(req.server_name):
        record = await wait_for_pending_media(
            rt, req.server_name, req.media_id, req.params.timeout_ms
        )
        if record is None:
            raise NotFound()
        return record
    # Frozen legacy routes never fill the cache: what they fetched they could not serve.
    frozen = rt.config.repo.freeze_unauthenticated_media and not req.authenticated_route
    return await fetch_remote_media(
        rt, req.server_name, req.media_id, allow_remote=req.allow_remote and not frozen,
        via=req.via,
    )


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
    content_type = normalise(record.content_type)
    if not thumbnailable(content_type, rt.config.thumbnails.types):
        raise BadRequest(f"Thumbnails of {content_type or 'this media'} are not supported")
    try:
        return await stored_or_generated(rt, ctx, GenerationRequest(record, target, animated))
    except (ThumbnailFailure, WorkerFailure) as exc:
        raise _as_matrix_error(exc, remote=not rt.is_local_server(record.origin)) from exc


async def run(rt: Runtime, req: ThumbnailRequest) -> ThumbnailAnswer:
    config = rt.config.thumbnails
    # Step 1: IDs outside the spec's allow-list name no media; ignored hosts' media is not served.
    if not is_valid_server_name(req.server_name) or not is_valid_media_id(req.media_id):
        raise NotFound("Invalid server name or media ID")
    if is_ignored_host(rt, req.server_name):
        raise NotFound("Media from this server is not served here")
    req = replace(req, server_name=rt.canonical_server_name(req.server_name))  # `LOCALHOST` is ours
    # Step 2: snap the request to the size thumbnails are made and stored at.
    asked = req.params
    target = snap(asked.width, asked.height, asked.method, config.sizes, config.dynamic_sizing)
    animated = _wants_animation(config, asked.animated)
    ctx = context_of(rt)
    media = (req.server_name, req.media_id)
    question = (target, animated, req.authenticated_route)
    # Step 3: a request answered a moment ago is answered the same way, without the database.
    thumb = ctx.answers.get(media, question)
    if thumb is None:
        # Step 4: the source's record and, when it was made before, the thumbnail's.
        record, thumb = await _look_up(rt, req, target, animated)
        # Step 5: not recorded yet: wait for an async upload, or fetch remote media once.
        record = record or await _find_source(rt, req)
        # Step 6: media uploaded while the legacy routes are frozen does not exist for them.
        if record.authenticated and not req.authenticated_route:
            raise NotFound()
        # Step 7: quarantined media gets the placeholder image (or nothing).
        if record.quarantined:
            return await answers.placeholder(rt, target)
        # Step 8: a missing thumbnail is made once cluster-wide (types the operator allows).
        thumb = thumb or await _generate(rt, ctx, record, target, animated)
        ctx.answers.put(media, question, thumb)
    # Step 9: note the access for retention, then the bytes (or a redirect to them).
    record_access(rt, req.server_name, req.media_id)
    return await answers.stored(rt, ctx, thumb, req.allow_redirect)
