"""Remote media: fetch `mxc://<remote>/<id>` over federation once and store it.

The source finder (`shared.media.source`) calls `fetch_remote_media` for remote media it has no
row for. A fetch runs once cluster-wide (singleflight on the coordinator), streams to a temp file under
`downloads.maxBytes`, is stored and recorded by the one writer (`shared.media.store`);
afterwards every process serves the row without asking the remote again. Failures are cached
cluster-wide for `downloads.failureCacheMinutes` so a dead server is not hammered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import Message
from urllib.parse import quote

import httpx

from shared.config import HomeserverConfig
from shared.coordination.singleflight import singleflight
from shared.db.repositories.media import MediaRecord, get_media
from shared.federation.client import FederationClient, FederationUnavailable, Signer
from shared.federation.multipart import MultipartError, boundary_of, read_media_multipart
from shared.matrix.disposition import clean_filename
from shared.matrix.errors import MatrixError, NotFound, NotYetUploaded, TooLarge, UpstreamError
from shared.media.store import MediaWrite, store_media
from shared.metrics import record as metrics
from shared.runtime import Runtime
from shared.storage.spool import SpoolTooLarge, spool_to_temp

log = logging.getLogger(__name__)

REMOTE_TIMEOUT_MS = 20000
"""How long the remote may wait for its own pending (async) uploads before answering."""


@dataclass(frozen=True)
class RemoteBody:
    """An open answer from the remote: the media's headers and a stream of its bytes."""

    content_type: str | None
    disposition: str | None
    declared_length: int | None
    chunks: AsyncIterator[bytes]


async def fetch_remote_media(
    rt: Runtime, server_name: str, media_id: str, via: HomeserverConfig | None = None
) -> MediaRecord:
    """The stored record of remote media, fetching and storing it first when it is not cached.

    Called by `shared.media.source` once the IDs are checked and no row was found. `via` is the
    homeserver whose signing key signs the request (default: the first with a signing key).
    Raises `NotFound` (404), `TooLarge` with status 502 (over `downloads.maxBytes`),
    `NotYetUploaded` (504) or `UpstreamError` (502) for an unreachable or failing remote.
    """
    # One fetch cluster-wide; the others find its row (or its cached failure).
    return await singleflight(
        rt.coordinator,
        f"remote:{server_name}/{media_id}",
        compute=lambda: metrics.observe_remote_fetch(
            rt, _fetch_and_remember_failure(rt, server_name, media_id, via)),
        lookup=lambda: _stored_or_cached_failure(rt, server_name, media_id),
        ttl_seconds=30.0,
        wait_seconds=rt.config.timeouts.federation_timeout_seconds * 2,
    )


async def _stored(rt: Runtime, server_name: str, media_id: str) -> MediaRecord | None:
    async with rt.sessions() as session:
        return await get_media(session, server_name, media_id)


def _failure_key(server_name: str, media_id: str) -> str:
    return f"remote-failure:{server_name}/{media_id}"


async def _stored_or_cached_failure(
    rt: Runtime, server_name: str, media_id: str
) -> MediaRecord | None:
    record = await _stored(rt, server_name, media_id)
    if record is not None:
        return record
    cached = await rt.coordinator.cache_get(_failure_key(server_name, media_id))
    if cached is not None:
        failure = json.loads(cached)
        raise MatrixError(failure["status"], failure["errcode"], failure["error"])
    return None


async def _fetch_and_remember_failure(
    rt: Runtime, server_name: str, media_id: str, via: HomeserverConfig | None
) -> MediaRecord:
    try:
        return await _fetch_and_store(rt, server_name, media_id, via)
    except NotYetUploaded:
        raise  # the remote will have it shortly: not a failure worth remembering
    except MatrixError as exc:
        ttl = rt.request_config.downloads.failure_cache_minutes * 60
        if ttl:
            failure = {"status": exc.status, "errcode": exc.errcode, "error": exc.error}
            await rt.coordinator.cache_set(
                _failure_key(server_name, media_id), json.dumps(failure).encode(), ttl
            )
        raise


async def _fetch_and_store(
    rt: Runtime, server_name: str, media_id: str, via: HomeserverConfig | None
) -> MediaRecord:
    max_bytes = rt.request_config.downloads.max_bytes
    client = rt.federation.client
    signer = rt.federation.signer_for(via)
    try:
        async with _open_remote(client, signer, server_name, media_id) as remote:
            # Step 5a: refuse what is declared too large before reading a byte.
            if max_bytes and remote.declared_length is not None and remote.declared_length > max_bytes:
                raise _too_large(max_bytes)
            # Step 5b: stream to a temp file under the limit, hashing as it goes.
            spooled = await spool_to_temp(remote.chunks, rt.temp_dir, max_bytes or None, rt.temp_tag)
    except SpoolTooLarge as exc:
        raise _too_large(max_bytes) from exc
    except (FederationUnavailable, httpx.HTTPError, MultipartError) as exc:
        log.warning("fetching mxc://%s/%s failed: %s", server_name, media_id, exc)
        raise UpstreamError(f"Could not fetch the media from {server_name}") from exc
    async with spooled:
        # Step 5c: store the bytes once (content-addressed) and record them.
        write = MediaWrite(
            kind="remote", origin=server_name, media_id=media_id,
            content_type=remote.content_type, filename=_filename(remote.disposition),
        )
        return await store_media(rt, write, spooled)


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"The remote media is larger than the limit of {max_bytes} bytes", status=502)


def _filename(disposition: str | None) -> str | None:
    """The filename of a Content-Disposition (RFC 6266, `filename*` preferred), cleaned."""
    if not disposition:
        return None
    message = Message()
    message["content-disposition"] = disposition
    return clean_filename(message.get_filename())


def _declared_length(headers: httpx.Headers | dict[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value and value.isdigit() else None


@asynccontextmanager
async def _open_remote(
    client: FederationClient, signer: Signer | None, server_name: str, media_id: str
) -> AsyncIterator[RemoteBody]:
    """The remote's media as a stream: the federation endpoint first, then the legacy one.

    Without a signing key only the unauthenticated legacy endpoint can be asked.
    """
    if signer is not None:
        path = f"/_matrix/federation/v1/media/download/{quote(media_id)}?timeout_ms={REMOTE_TIMEOUT_MS}"
        async with client.request(server_name, path, signer=signer) as response:
            if not await _is_unknown_endpoint(response):
                async with _open_federation_body(client, response, server_name) as body:
                    yield body
                return
            log.info("%s has no federation media endpoint; using the legacy one", server_name)
    path = (
        f"/_matrix/media/v3/download/{quote(server_name)}/{quote(media_id)}"
        f"?allow_remote=false&allow_redirect=true&timeout_ms={REMOTE_TIMEOUT_MS}"
    )
    async with client.request(server_name, path, follow_redirects=True) as response:
        await _raise_for_status(response, server_name)
        yield _plain_body(response)


async def _error_body(response: httpx.Response) -> dict[str, object] | None:
    """The JSON error object of a (small) error answer, or None."""
    try:
        raw = await response.aread()
        body = json.loads(raw) if len(raw) < 65536 else None
    except (ValueError, httpx.HTTPError):
        return None
    return body if isinstance(body, dict) else None


async def _is_unknown_endpoint(response: httpx.Response) -> bool:
    """The spec's trigger for the legacy fallback (a 404/405 that is not a JSON `M_NOT_FOUND`,
    or the `400 M_UNRECOGNIZED` of older Synapses)."""
    if response.status_code not in (400, 404, 405):
        return False
    body = await _error_body(response)
    errcode = body.get("errcode") if body else None
    if response.status_code == 400:
        return errcode == "M_UNRECOGNIZED"
    return errcode is None or errcode == "M_UNRECOGNIZED"


async def _raise_for_status(response: httpx.Response, server_name: str) -> None:
    """Map a non-200 answer of the remote to the Matrix error our client gets."""
    if response.status_code == 200:
        return
    body = await _error_body(response)
    errcode = body.get("errcode") if body else None
    if response.status_code == 404:
        raise NotFound("The remote server has no such media")
    if response.status_code == 504 and errcode == "M_NOT_YET_UPLOADED":
        raise NotYetUploaded("The remote media has not been uploaded yet")
    if errcode == "M_TOO_LARGE":
        raise TooLarge("The remote server says the media is too large", status=502)
    raise UpstreamError(f"{server_name} answered {response.status_code} to a media request")


def _plain_body(response: httpx.Response) -> RemoteBody:
    return RemoteBody(
        content_type=response.headers.get("content-type"),
        disposition=response.headers.get("content-disposition"),
        declared_length=_declared_length(response.headers),
        chunks=response.aiter_bytes(),
    )


@asynccontextmanager
async def _open_federation_body(
    client: FederationClient, response: httpx.Response, server_name: str
) -> AsyncIterator[RemoteBody]:
    """The media of a 200 federation answer: multipart bytes, a followed `Location`, or (from
    peers that skip the multipart wrapping) the plain body."""
    await _raise_for_status(response, server_name)
    boundary = boundary_of(response.headers.get("content-type", ""))
    if boundary is None:
        yield _plain_body(response)
        return
    part = await read_media_multipart(boundary, response.aiter_bytes())
    if part.location is None:
        yield RemoteBody(
            content_type=part.headers.get("content-type"),
            disposition=part.headers.get("content-disposition"),
            declared_length=_declared_length(part.headers),
            chunks=part.body,
        )
        return
    async with client.get_url(part.location) as redirected:
        await _raise_for_status(redirected, server_name)
        yield _plain_body(redirected)
