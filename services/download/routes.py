"""Download HTTP routes: authenticated v1, the deprecated legacy routes, and federation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from services.download import pipeline
from services.download.serving import Preconditions
from shared.runtime import Runtime
from shared.web.conditional import NotModified
from shared.web.deps import HomeserverDep, RuntimeDep, UserDep
from shared.web.federation import FederationOriginDep
from shared.web.ratelimit import charge_download, limit_by_ip

router = APIRouter()


async def _respond(
    request: Request, runtime: Runtime, result: pipeline.DownloadResult
) -> Response:
    if isinstance(result, NotModified):
        return Response(status_code=304, headers=result.headers)
    if isinstance(result, pipeline.Redirect):
        return Response(status_code=307, headers={**result.headers, "Location": result.location})
    if request.method == "HEAD":
        return Response(status_code=result.status, headers=result.headers)
    # Only bytes this process sends count against the client's download budget (not a HEAD, a
    # 304 or a redirect); the stream is not opened yet, so a 429 here reads nothing.
    await charge_download(request, runtime, int(result.headers["Content-Length"]))
    return StreamingResponse(result.body, status_code=result.status, headers=result.headers)


def _preconditions(request: Request) -> Preconditions:
    headers = request.headers
    return Preconditions(headers.get("range"), headers.get("if-range"), headers.get("if-none-match"))


async def download_media(
    server_name: str, media_id: str, request: Request, runtime: RuntimeDep, user: UserDep,
    hs: HomeserverDep, file_name: str | None = None, timeout_ms: int | None = None,
) -> Response:
    """`GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`.

    Remote media is always fetched and redirects are always allowed (clients must follow them).
    """
    req = pipeline.DownloadRequest(
        server_name, media_id, file_name, authenticated_route=True, timeout_ms=timeout_ms,
        allow_remote=True, allow_redirect=True, via=hs, preconditions=_preconditions(request),
    )
    return await _respond(request, runtime, await pipeline.run(runtime, req))


async def legacy_download_media(
    server_name: str, media_id: str, request: Request, runtime: RuntimeDep,
    file_name: str | None = None, timeout_ms: int | None = None,
    allow_remote: bool = True, allow_redirect: bool = False,
) -> Response:
    """Deprecated unauthenticated `GET|HEAD /_matrix/media/{r0,v1,v3}/download/...`."""
    req = pipeline.DownloadRequest(
        server_name, media_id, file_name, authenticated_route=False, timeout_ms=timeout_ms,
        allow_remote=allow_remote, allow_redirect=allow_redirect,
        preconditions=_preconditions(request),
    )
    return await _respond(request, runtime, await pipeline.run(runtime, req))


async def federation_download_media(
    media_id: str, runtime: RuntimeDep, origin: FederationOriginDep, timeout_ms: int | None = None,
) -> Response:
    """`GET /_matrix/federation/v1/media/download/{mediaId}`: our media for a signed-in server."""
    req = pipeline.FederationDownloadRequest(origin.homeserver, media_id, timeout_ms)
    answer = await pipeline.run_federation(runtime, req)
    return StreamingResponse(answer.body, media_type=answer.content_type)


_V1 = "/_matrix/client/v1/media/download/{server_name}/{media_id}"
# Clients are limited per IP (`rateLimit`, and bytes in `_respond`); servers fetching over
# federation are not.
_METHODS = ["GET", "HEAD"]
_LIMITED = [Depends(limit_by_ip)]
router.add_api_route(_V1, download_media, methods=_METHODS, dependencies=_LIMITED)
router.add_api_route(_V1 + "/{file_name}", download_media, methods=_METHODS, dependencies=_LIMITED)
for _version in ("r0", "v1", "v3"):
    _legacy = f"/_matrix/media/{_version}/download/{{server_name}}/{{media_id}}"
    for _path in (_legacy, _legacy + "/{file_name}"):
        router.add_api_route(_path, legacy_download_media, methods=_METHODS, dependencies=_LIMITED)
router.add_api_route(
    "/_matrix/federation/v1/media/download/{media_id}", federation_download_media, methods=["GET"]
)
