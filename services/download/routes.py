"""Download HTTP routes: authenticated v1, the deprecated legacy routes, and federation."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from services.download import pipeline
from services.download.serving import Preconditions
from shared.runtime import Runtime
from shared.web.conditional import NotModified
from shared.web.deps import RuntimeDep, get_homeserver, get_user
from shared.web.federation import FederationOriginDep
from shared.web.lean import LeanRoute
from shared.web.params import bool_param, int_param
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
    # Only bytes sent on this answer count against the client's download budget (not a HEAD, a
    # 304 or a redirect; nginx's, after X-Accel-Redirect, do).
    await charge_download(request, runtime, result.size_bytes)
    if result.body is not None:
        return StreamingResponse(result.body, status_code=result.status, headers=result.headers)
    # An accelerated answer's bytes come from nginx (X-Accel-Redirect): its own body is empty.
    content = b"" if result.accel else result.content
    return Response(content, status_code=result.status, headers=result.headers)


def _preconditions(request: Request) -> Preconditions:
    headers = request.headers
    return Preconditions(headers.get("range"), headers.get("if-range"), headers.get("if-none-match"))


# The client download routes are the hottest of all, so they are lean Starlette endpoints:
# FastAPI's per-request dependency solving and parameter validation cost more than the rest
# of a cached 10 KiB download. They call the same dependencies by hand, in FastAPI's order
# (route dependencies, then the endpoint's), and raise the same Matrix errors, which the
# app's shared handlers answer.
async def download_media(request: Request) -> Response:
    """`GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`.

    Remote media is always fetched and redirects are always allowed (clients must follow them).
    """
    runtime: Runtime = request.app.state.runtime
    await limit_by_ip(request, runtime)
    hs = await get_homeserver(request, runtime)
    await get_user(request, runtime, hs)
    path, query = request.path_params, request.query_params
    req = pipeline.DownloadRequest(
        path["server_name"], path["media_id"], path.get("file_name"), authenticated_route=True,
        timeout_ms=int_param(query, "timeout_ms"), allow_remote=True, allow_redirect=True,
        via=hs, preconditions=_preconditions(request), head=request.method == "HEAD",
    )
    return await _respond(request, runtime, await pipeline.run(runtime, req))


async def legacy_download_media(request: Request) -> Response:
    """Deprecated unauthenticated `GET|HEAD /_matrix/media/{r0,v1,v3}/download/...`."""
    runtime: Runtime = request.app.state.runtime
    await limit_by_ip(request, runtime)
    path, query = request.path_params, request.query_params
    req = pipeline.DownloadRequest(
        path["server_name"], path["media_id"], path.get("file_name"), authenticated_route=False,
        timeout_ms=int_param(query, "timeout_ms"),
        allow_remote=bool_param(query, "allow_remote", True),
        allow_redirect=bool_param(query, "allow_redirect", False),
        preconditions=_preconditions(request), head=request.method == "HEAD",
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
router.routes.append(LeanRoute(_V1, download_media, methods=_METHODS))
router.routes.append(LeanRoute(_V1 + "/{file_name}", download_media, methods=_METHODS))
for _version in ("r0", "v1", "v3"):
    _legacy = f"/_matrix/media/{_version}/download/{{server_name}}/{{media_id}}"
    for _path in (_legacy, _legacy + "/{file_name}"):
        router.routes.append(LeanRoute(_path, legacy_download_media, methods=_METHODS))
router.add_api_route(
    "/_matrix/federation/v1/media/download/{media_id}", federation_download_media, methods=["GET"]
)
