"""Download HTTP routes: authenticated v1 and the deprecated legacy routes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from services.download import pipeline
from shared.web.deps import RuntimeDep, UserDep

router = APIRouter()


def _respond(request: Request, media: pipeline.MediaStream) -> Response:
    if request.method == "HEAD":
        return Response(status_code=200, headers=media.headers)
    return StreamingResponse(media.body, headers=media.headers)


async def download_media(
    server_name: str, media_id: str, request: Request, runtime: RuntimeDep, user: UserDep,
    file_name: str | None = None, timeout_ms: int | None = None,
) -> Response:
    """`GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`."""
    req = pipeline.DownloadRequest(
        server_name, media_id, file_name, authenticated_route=True, timeout_ms=timeout_ms
    )
    return _respond(request, await pipeline.run(runtime, req))


async def legacy_download_media(
    server_name: str, media_id: str, request: Request, runtime: RuntimeDep,
    file_name: str | None = None, timeout_ms: int | None = None,
) -> Response:
    """Deprecated unauthenticated `GET|HEAD /_matrix/media/{r0,v1,v3}/download/...`."""
    req = pipeline.DownloadRequest(
        server_name, media_id, file_name, authenticated_route=False, timeout_ms=timeout_ms
    )
    return _respond(request, await pipeline.run(runtime, req))


_V1 = "/_matrix/client/v1/media/download/{server_name}/{media_id}"
router.add_api_route(_V1, download_media, methods=["GET", "HEAD"])
router.add_api_route(_V1 + "/{file_name}", download_media, methods=["GET", "HEAD"])
for _version in ("r0", "v1", "v3"):
    _legacy = f"/_matrix/media/{_version}/download/{{server_name}}/{{media_id}}"
    router.add_api_route(_legacy, legacy_download_media, methods=["GET", "HEAD"])
    router.add_api_route(_legacy + "/{file_name}", legacy_download_media, methods=["GET", "HEAD"])
