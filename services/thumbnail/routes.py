"""Thumbnail HTTP routes: authenticated v1, the deprecated legacy routes, and federation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from services.thumbnail import identicon, media_info, pipeline
from services.thumbnail.sizing import Method
from shared.auth.users import UserInfo
from shared.config import HomeserverConfig
from shared.federation.multipart import (
    multipart_content_type,
    new_boundary,
    write_media_multipart,
)
from shared.matrix.errors import InvalidParam, MissingParam, NotFound
from shared.runtime import Runtime
from shared.web.conditional import NotModified
from shared.web.deps import RuntimeDep, get_homeserver, get_runtime, get_user
from shared.web.federation import FederationOriginDep
from shared.web.lean import LeanRoute
from shared.web.params import bool_param, bounded_int_param, optional_bool_param
from shared.web.prebuilt import PrebuiltResponse
from shared.web.ratelimit import charge_download, limit_by_ip

router = APIRouter()
PART_HEADERS = ("Content-Type", "Content-Disposition")
UNSTABLE_ANIMATED = "org.matrix.msc2705.animated"  # MSC2705's name, still sent by some clients
MAX_INTEGER = 2**31 - 1


# Parsed by hand rather than declared per parameter: this is the hottest route of the service,
# and one pass over the query costs a fraction of FastAPI validating six parameters.
def _size(query: Mapping[str, str], name: str) -> int:
    value = bounded_int_param(query, name, 1, MAX_INTEGER)
    if value is None:
        raise MissingParam(f"Missing parameter: {name}")
    return value


def _params(request: Request) -> pipeline.ThumbnailParams:
    query = request.query_params
    method = query.get("method", "scale")
    if method not in ("crop", "scale"):
        raise InvalidParam("Invalid parameter method: must be crop or scale")
    animated = optional_bool_param(query, "animated")
    return pipeline.ThumbnailParams(
        width=_size(query, "width"),
        height=_size(query, "height"),
        method=cast(Method, method),
        animated=animated if animated is not None else optional_bool_param(query,
                                                                           UNSTABLE_ANIMATED),
        timeout_ms=bounded_int_param(query, "timeout_ms", 0, MAX_INTEGER),
    )


async def _respond(
    request: Request, runtime: Runtime, answer: pipeline.ThumbnailResponse | NotModified
) -> Response:
    """The client form; the bytes sent (a redirect or a 304 sends none) count against the
    client's download budget."""
    if isinstance(answer, NotModified):
        return Response(status_code=304, headers=answer.headers)
    if answer.location is not None:
        return RedirectResponse(answer.location, status_code=307)
    await charge_download(request, runtime, int(answer.headers.get("Content-Length", 0)))
    if answer.encoded is not None and isinstance(answer.body, bytes):
        return PrebuiltResponse(answer.body, answer.encoded)
    if answer.body is None or isinstance(answer.body, bytes):
        return Response(answer.body, headers=answer.headers)
    return StreamingResponse(answer.body, headers=answer.headers)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _stream(body: bytes | AsyncIterator[bytes] | None) -> AsyncIterator[bytes] | None:
    return _once(body) if isinstance(body, bytes) else body


def _respond_multipart(answer: pipeline.ThumbnailResponse | NotModified) -> Response:
    """The federation form: `{}` metadata, then the same bytes a client gets (or a Location)."""
    assert not isinstance(answer, NotModified)  # federation requests carry no If-None-Match
    boundary = new_boundary()
    if answer.location is not None:
        parts = write_media_multipart(boundary, {"Location": answer.location}, None)
    else:
        headers = {name: answer.headers[name] for name in PART_HEADERS}
        parts = write_media_multipart(boundary, headers, _stream(answer.body))
    return StreamingResponse(parts, media_type=multipart_content_type(boundary))


@dataclass(frozen=True)
class Caller:
    runtime: Runtime
    homeserver: HomeserverConfig
    user: UserInfo


async def get_caller(request: Request) -> Caller:
    """Runtime, homeserver and user as one dependency, composed from the shared ones: FastAPI
    spends as much on resolving each declared dependency as on a whole warm thumbnail."""
    runtime = await get_runtime(request)
    await limit_by_ip(request, runtime)
    hs = await get_homeserver(request, runtime)
    return Caller(runtime, hs, await get_user(request, runtime, hs))


CallerDep = Annotated[Caller, Depends(get_caller)]


# The client thumbnail routes are the service's hottest, so they are lean Starlette endpoints
# (`shared.web.lean`, as the downloads): FastAPI's routing walk and dependency solving cost more
# than the rest of a warm thumbnail. They call the same dependencies by hand, in FastAPI's
# order, and raise the same Matrix errors, which the app's shared handlers answer.
async def get_thumbnail(request: Request) -> Response:
    """`GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}` (guests allowed)."""
    caller = await get_caller(request)
    path = request.path_params
    req = pipeline.ThumbnailRequest(
        path["server_name"], path["media_id"], _params(request), allow_remote=True,
        allow_redirect=True, authenticated_route=True, via=caller.homeserver,
        if_none_match=request.headers.get("if-none-match"),
    )
    return await _respond(request, caller.runtime, await pipeline.run(caller.runtime, req))


async def legacy_get_thumbnail(request: Request) -> Response:
    """Deprecated unauthenticated `GET /_matrix/media/{r0,v1,v3}/thumbnail/...`."""
    runtime: Runtime = request.app.state.runtime
    await limit_by_ip(request, runtime)
    hs = await get_homeserver(request, runtime)
    query, path = request.query_params, request.path_params
    req = pipeline.ThumbnailRequest(
        path["server_name"], path["media_id"], _params(request),
        allow_remote=bool_param(query, "allow_remote", True),
        allow_redirect=bool_param(query, "allow_redirect", False),
        authenticated_route=False, via=hs, if_none_match=request.headers.get("if-none-match"),
    )
    return await _respond(request, runtime, await pipeline.run(runtime, req))


async def federation_get_thumbnail(
    media_id: str, request: Request, runtime: RuntimeDep, origin: FederationOriginDep,
) -> Response:
    """`GET /_matrix/federation/v1/media/thumbnail/{mediaId}`: our own media only, multipart."""
    req = pipeline.ThumbnailRequest(
        origin.homeserver.name, media_id, _params(request), allow_remote=False,
        allow_redirect=True, authenticated_route=True, via=origin.homeserver,
    )
    return _respond_multipart(await pipeline.run(runtime, req))


def _lean_get(path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> LeanRoute:
    route = LeanRoute(path, endpoint, methods=["GET"])
    # Starlette adds HEAD to every GET route; these answered GET only before they were lean.
    route.methods = {"GET"}
    return route


router.routes.append(
    _lean_get("/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}", get_thumbnail)
)
for _version in ("r0", "v1", "v3"):
    router.routes.append(_lean_get(
        f"/_matrix/media/{_version}/thumbnail/{{server_name}}/{{media_id}}", legacy_get_thumbnail
    ))
router.add_api_route(
    "/_matrix/federation/v1/media/thumbnail/{media_id}", federation_get_thumbnail, methods=["GET"]
)


async def get_identicon(seed: str, request: Request, runtime: RuntimeDep) -> Response:
    """`GET /_matrix/media/r0/identicon/{seed}` (MMR's; no token needed): a default avatar,
    `width` (default 96) and `height` (default the width), each clamped to 96..512."""
    if not runtime.request_config.identicons.enabled:
        raise NotFound("Identicons are disabled here")
    query = request.query_params
    width = bounded_int_param(query, "width", 0, MAX_INTEGER) or identicon.DEFAULT_SIZE
    height = bounded_int_param(query, "height", 0, MAX_INTEGER) or width
    drawn = await asyncio.to_thread(identicon.draw, seed, width, height)
    return Response(drawn.png, media_type="image/png", headers={
        "Content-Disposition": f'inline; filename="{drawn.digest_hex}.png"',
        "Cache-Control": "public, max-age=86400, immutable",
    })


async def get_media_info(
    server_name: str, media_id: str, request: Request, caller: CallerDep
) -> dict[str, Any]:
    """`GET /_matrix/media/unstable/info/{serverName}/{mediaId}` (MMR's, token required)."""
    allow_remote = bool_param(request.query_params, "allow_remote", True)
    req = media_info.InfoRequest(server_name, media_id, allow_remote,
                                 via=caller.homeserver)
    return await media_info.run(caller.runtime, req)


# Drawing is cheap and needs nothing but the seed; still per-IP limited like every client route.
router.add_api_route("/_matrix/media/r0/identicon/{seed:path}", get_identicon, methods=["GET"],
                     dependencies=[Depends(limit_by_ip)])
for _prefix in ("/_matrix/media/unstable", "/_matrix/media/unstable/io.t2bot.media"):
    router.add_api_route(f"{_prefix}/info/{{server_name}}/{{media_id}}", get_media_info,
                         methods=["GET"])
