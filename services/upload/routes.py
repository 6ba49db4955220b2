"""Upload HTTP routes: parse the request, call the pipeline, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.upload import pipeline
from shared.matrix.errors import InvalidParam
from shared.web.deps import HomeserverDep, RuntimeDep, UserDep

router = APIRouter()
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidParam("Content-Length must be a non-negative integer")
    return int(raw)


async def upload_media(
    request: Request, runtime: RuntimeDep, hs: HomeserverDep, user: UserDep
) -> dict[str, str]:
    """`POST /_matrix/media/{r0,v1,v3}/upload`: raw body in, `mxc://` URI out."""
    record = await pipeline.run(
        runtime,
        pipeline.UploadRequest(
            server_name=hs.name,
            user=user,
            content_type=request.headers.get("content-type") or DEFAULT_CONTENT_TYPE,
            filename=request.query_params.get("filename"),
            declared_length=_declared_length(request),
            body=request.stream(),
        ),
    )
    return {"content_uri": record.mxc}


async def media_config(runtime: RuntimeDep, hs: HomeserverDep, user: UserDep) -> dict[str, int]:
    """`GET .../config`: the upload size limit clients should respect."""
    limits = runtime.config.uploads_for(hs.name)
    reported = limits.reported_max_bytes or limits.max_bytes
    return {"m.upload.size": reported} if reported > 0 else {}


for _version in ("r0", "v1", "v3"):
    router.add_api_route(f"/_matrix/media/{_version}/upload", upload_media, methods=["POST"])
for _path in ("/_matrix/client/v1/media/config", "/_matrix/media/r0/config", "/_matrix/media/v3/config"):
    router.add_api_route(_path, media_config, methods=["GET"])
