"""Thumbnail HTTP routes: authenticated v1, the deprecated legacy routes, and federation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from services.thumbnail import pipeline
from services.thumbnail.sizing import Method
from shared.federation.multipart import (
    multipart_content_type,
    new_boundary,
    write_media_multipart,
)
from shared.web.deps import RuntimeDep, UserDep
from shared.web.federation import FederationOriginDep

router = APIRouter()

Width = Annotated[int, Query(gt=0, description="Minimum width wanted")]
Height = Annotated[int, Query(gt=0, description="Minimum height wanted")]
Animated = Annotated[bool | None, Query()]
# MSC2705's unstable name for `animated`, still sent by some clients.
UnstableAnimated = Annotated[bool | None, Query(alias="org.matrix.msc2705.animated")]
TimeoutMs = Annotated[int | None, Query(ge=0)]
PART_HEADERS = ("Content-Type", "Content-Disposition")


def _respond(answer: pipeline.ThumbnailAnswer) -> Response:
    if answer.location is not None:
        return RedirectResponse(answer.location, status_code=307)
    if answer.body is None or isinstance(answer.body, bytes):
        return Response(answer.body, headers=answer.headers)
    return StreamingResponse(answer.body, headers=answer.headers)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _stream(body: bytes | AsyncIterator[bytes] | None) -> AsyncIterator[bytes] | None:
    return _once(body) if isinstance(body, bytes) else body


def _respond_multipart(answer: pipeline.ThumbnailAnswer) -> Response:
    """The federation form: `{}` metadata, then the same bytes a client gets (or a Location)."""
    boundary = new_boundary()
    if answer.location is not None:
        parts = write_media_multipart(boundary, {"Location": answer.location}, None)
    else:
        headers = {name: answer.headers[name] for name in PART_HEADERS}
        parts = write_media_multipart(boundary, headers, _stream(answer.body))
    return StreamingResponse(parts, media_type=multipart_content_type(boundary))


async def get_thumbnail(
    server_name: str, media_id: str, runtime: RuntimeDep, user: UserDep,
    width: Width, height: Height, method: Method = "scale", animated: Animated = None,
    unstable_animated: UnstableAnimated = None, timeout_ms: TimeoutMs = None,
) -> Response:
    """`GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}` (guests allowed)."""
    req = pipeline.ThumbnailRequest(
        server_name, media_id, width, height, method,
        animated=animated if animated is not None else unstable_animated,
        timeout_ms=timeout_ms, allow_remote=True, allow_redirect=True, authenticated_route=True,
    )
    return _respond(await pipeline.run(runtime, req))


async def legacy_get_thumbnail(
    server_name: str, media_id: str, runtime: RuntimeDep,
    width: Width, height: Height, method: Method = "scale", animated: Animated = None,
    unstable_animated: UnstableAnimated = None, timeout_ms: TimeoutMs = None,
    allow_remote: bool = True, allow_redirect: bool = False,
) -> Response:
    """Deprecated unauthenticated `GET /_matrix/media/{r0,v1,v3}/thumbnail/...`."""
    req = pipeline.ThumbnailRequest(
        server_name, media_id, width, height, method,
        animated=animated if animated is not None else unstable_animated,
        timeout_ms=timeout_ms, allow_remote=allow_remote, allow_redirect=allow_redirect,
        authenticated_route=False,
    )
    return _respond(await pipeline.run(runtime, req))


async def federation_get_thumbnail(
    media_id: str, runtime: RuntimeDep, origin: FederationOriginDep,
    width: Width, height: Height, method: Method = "scale", animated: Animated = None,
    timeout_ms: TimeoutMs = None,
) -> Response:
    """`GET /_matrix/federation/v1/media/thumbnail/{mediaId}`: our own media only, multipart."""
    req = pipeline.ThumbnailRequest(
        origin.homeserver.name, media_id, width, height, method, animated=animated,
        timeout_ms=timeout_ms, allow_remote=False, allow_redirect=True, authenticated_route=True,
    )
    return _respond_multipart(await pipeline.run(runtime, req))


router.add_api_route(
    "/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}", get_thumbnail, methods=["GET"]
)
for _version in ("r0", "v1", "v3"):
    router.add_api_route(
        f"/_matrix/media/{_version}/thumbnail/{{server_name}}/{{media_id}}",
        legacy_get_thumbnail, methods=["GET"],
    )
router.add_api_route(
    "/_matrix/federation/v1/media/thumbnail/{media_id}", federation_get_thumbnail, methods=["GET"]
)
