"""The one source finder: which stored original a download or thumbnail request is served from.

Both the download and the thumbnail pipelines find their original here (as matrix-media-repo's
thumbnail pipeline reuses its download step), so they agree on every rule:

1. `check_request`: only the spec's server names and media IDs, and no media of ignored hosts.
2. `recorded`: the media row, if there is one (the thumbnail pipeline reads it together with
   the stored thumbnail instead).
3. `servable`: media not recorded yet is waited for (our own: a pending async upload, up to
   `timeout_ms`, then 504) or fetched once cluster-wide (remote media), unless the request may
   not fetch; media uploaded while the legacy routes are frozen does not exist for them.

`find_source` runs all three. Quarantined media is returned as it is: each caller answers it its
own way (a replacement image, a placeholder thumbnail, or 404 over federation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.config import HomeserverConfig
from shared.db.repositories.media import MediaRecord, get_media
from shared.ids.media_id import is_valid_media_id, is_valid_server_name
from shared.matrix.errors import FrozenOnLegacyRoute, NotFound
from shared.media.pending import wait_for_pending_media
from shared.media.remote import fetch_remote_media
from shared.runtime import Runtime


@dataclass(frozen=True)
class SourceRequest:
    server_name: str
    media_id: str
    # The deprecated unauthenticated routes may not serve (or fetch) media uploaded while frozen.
    authenticated_route: bool
    # False: never contact a remote server (legacy `allow_remote=false`, federation requests).
    allow_remote: bool = True
    # How long to wait for an async upload that has not arrived (None: the spec's default).
    timeout_ms: int | None = None
    # The homeserver the request came through: its signing key signs a remote fetch.
    via: HomeserverConfig | None = None
    # The authenticated endpoint that serves what a frozen legacy route may not (its 404 says so).
    endpoint: str = "download"


def is_ignored_host(rt: Runtime, server_name: str) -> bool:
    return server_name.lower() in {host.lower() for host in rt.config.federation.ignored_hosts}


def check_request(rt: Runtime, req: SourceRequest) -> SourceRequest:
    """Before any storage or network access: valid IDs of a host whose media is served. Returns
    the request under our homeserver's configured spelling when it names us in another case
    (`LOCALHOST`): rows are keyed by that spelling."""
    if not is_valid_server_name(req.server_name) or not is_valid_media_id(req.media_id):
        raise NotFound("Invalid server name or media ID")
    if is_ignored_host(rt, req.server_name):
        raise NotFound("Media from this server is not served here")
    return replace(req, server_name=rt.canonical_server_name(req.server_name))


async def recorded(rt: Runtime, req: SourceRequest) -> MediaRecord | None:
    """The media row, from this process's record cache when it is there (`rt.media_records`:
    changes are announced, so a cached record is as current as the database's)."""
    cache = rt.media_records
    await cache.ensure_listening(rt.coordinator)
    record = cache.get(req.server_name, req.media_id)
    if record is not None:
        return record
    generation = cache.generation
    async with rt.sessions() as session:
        record = await get_media(session, req.server_name, req.media_id)
    if record is not None:
        cache.put(record, generation)
    return record


async def servable(rt: Runtime, req: SourceRequest, record: MediaRecord | None) -> MediaRecord:
    """`record` (what `recorded` found), or the media once it is uploaded or fetched; 404 when
    this request may not see it."""
    if record is None:
        record = await _arrived_or_fetched(rt, req)
    if record.authenticated and not req.authenticated_route:
        raise FrozenOnLegacyRoute(req.endpoint)
    return record


async def find_source(rt: Runtime, req: SourceRequest) -> MediaRecord:
    req = check_request(rt, req)
    return await servable(rt, req, await recorded(rt, req))


async def _arrived_or_fetched(rt: Runtime, req: SourceRequest) -> MediaRecord:
    if rt.is_local_server(req.server_name):
        # Created by /create but not uploaded yet: wait for the PUT (504 after timeout_ms).
        record = await wait_for_pending_media(rt, req.server_name, req.media_id, req.timeout_ms)
        if record is None:
            raise NotFound()
        return record
    # Frozen legacy routes never fill the cache: what they fetched they could not serve.
    frozen = rt.config.repo.freeze_unauthenticated_media and not req.authenticated_route
    if not req.allow_remote or frozen:
        raise NotFound()
    return await fetch_remote_media(rt, req.server_name, req.media_id, via=req.via)
