"""Upload HTTP routes: parse the request, call the pipeline, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from services.upload import client_api, pipeline, reservations
from shared.auth.tokens import extract_token
from shared.auth.users import UserInfo
from shared.config import MmrConfig
from shared.matrix.disposition import DEFAULT_CONTENT_TYPE
from shared.matrix.errors import InvalidParam
from shared.media.quota import quota_for
from shared.runtime import Runtime
from shared.web.deps import HomeserverDep, RuntimeDep, UserDep, get_homeserver, get_user
from shared.web.json import FastJSONResponse
from shared.web.lean import LeanRoute
from shared.web.ratelimit import limit_by_ip, limit_by_user

# Every upload-service route is limited per client IP; uploads and creates also per user.
router = APIRouter(dependencies=[Depends(limit_by_ip)])


def _upload_rate(config: MmrConfig, user: UserInfo) -> tuple[float, int]:
    return config.uploads.rate_per_second, config.uploads.rate_burst


charge_uploader = limit_by_user("uploads", _upload_rate, allow_guests=False)
UploaderDep = Annotated[UserInfo, Depends(charge_uploader)]


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise InvalidParam("Content-Length must be a non-negative integer")
    return int(raw)


def _upload_request(request: Request, server_name: str, user: UserInfo) -> pipeline.UploadRequest:
    return pipeline.UploadRequest(
        server_name=server_name,
        user=user,
        content_type=request.headers.get("content-type") or DEFAULT_CONTENT_TYPE,
        filename=request.query_params.get("filename"),
        declared_length=_declared_length(request),
        body=request.stream(),
    )


# The upload routes are lean Starlette endpoints (shared.web.lean), as the downloads are:
# FastAPI's dependency solving and its walk through every included router were a fifth of a
# 1 MiB upload's CPU. They call the same dependencies by hand in FastAPI's order (the router's
# per-IP limit, the homeserver, the user, the per-user upload limit) and raise the same Matrix
# errors, which the app's shared handlers answer.
async def _uploader(request: Request) -> tuple[Runtime, str, UserInfo]:
    runtime: Runtime = request.app.state.runtime
    await limit_by_ip(request, runtime)
    hs = await get_homeserver(request, runtime)
    user = await charge_uploader(runtime, await get_user(request, runtime, hs))
    return runtime, hs.name, user


async def upload_media(request: Request) -> Response:
    """`POST /_matrix/media/{r0,v1,v3}/upload`: raw body in, `mxc://` URI out."""
    runtime, server_name, user = await _uploader(request)
    record = await pipeline.run(runtime, _upload_request(request, server_name, user))
    return FastJSONResponse({"content_uri": record.mxc})


async def create_media(runtime: RuntimeDep, hs: HomeserverDep, user: UploaderDep) -> dict[str, Any]:
    """`POST /_matrix/media/v1/create`: reserve an MXC to PUT content into later."""
    created = await reservations.create(runtime, hs.name, user.user_id)
    return {"content_uri": created.content_uri, "unused_expires_at": created.unused_expires_at}


async def upload_media_async(request: Request) -> Response:
    """`PUT /_matrix/media/{r0,v3}/upload/{serverName}/{mediaId}`: content for a created ID."""
    runtime, server_name, user = await _uploader(request)
    path = request.path_params
    await pipeline.run_put(runtime, _upload_request(request, server_name, user),
                           path["server_name"], path["media_id"])
    return FastJSONResponse({})


async def media_config(runtime: RuntimeDep, hs: HomeserverDep, user: UserDep) -> dict[str, int]:
    """`GET .../config`: the upload size limit (and the user's storage quota, MSC4034)."""
    limits = runtime.config.uploads_for(hs.name)
    answer: dict[str, int] = {}
    # reportedMaxBytes: 0 reports maxBytes, -1 reports nothing (e.g. a proxy sets the real limit).
    reported = limits.reported_max_bytes or limits.max_bytes
    if reported > 0:
        answer["m.upload.size"] = reported
    quota = quota_for(limits, user.user_id)
    if quota is not None and quota.max_bytes:
        answer["org.matrix.msc4034.storage.size"] = quota.max_bytes
    if quota is not None and quota.max_files:
        answer["org.matrix.msc4034.storage.max_files"] = quota.max_files
    return answer


for _version in ("r0", "v1", "v3"):
    router.routes.append(LeanRoute(f"/_matrix/media/{_version}/upload", upload_media,
                                   methods=["POST"]))
for _version in ("r0", "v3"):
    router.routes.append(LeanRoute(
        f"/_matrix/media/{_version}/upload/{{server_name}}/{{media_id}}", upload_media_async,
        methods=["PUT"],
    ))
router.add_api_route("/_matrix/media/v1/create", create_media, methods=["POST"])
for _path in ("/_matrix/client/v1/media/config", "/_matrix/media/r0/config", "/_matrix/media/v3/config"):
    router.add_api_route(_path, media_config, methods=["GET"])


def _token(request: Request, runtime: RuntimeDep) -> str | None:
    return extract_token(request.headers, request.query_params,
                         runtime.config.repo.accept_query_access_token)


async def usage(runtime: RuntimeDep, user: UserDep) -> dict[str, int]:
    """`GET /_matrix/media/unstable/org.matrix.msc4034/usage`: the user's stored bytes and files."""
    return await client_api.usage(runtime, user)


async def logout(request: Request, runtime: RuntimeDep, hs: HomeserverDep, user: UserDep) -> dict[str, Any]:
    """`POST /_matrix/client/{r0,v3}/logout`: logged out at the homeserver, forgotten here."""
    return await client_api.logout(runtime, hs, user, _token(request, runtime) or "",
                                   request.query_params.get("user_id"), everywhere=False)


async def logout_all(
    request: Request, runtime: RuntimeDep, hs: HomeserverDep, user: UserDep
) -> dict[str, Any]:
    """`POST /_matrix/client/{r0,v3}/logout/all`: every token of the user, here and there."""
    return await client_api.logout(runtime, hs, user, _token(request, runtime) or "",
                                   request.query_params.get("user_id"), everywhere=True)


async def client_versions(request: Request, runtime: RuntimeDep, hs: HomeserverDep) -> dict[str, Any]:
    """`GET /_matrix/client/versions`: the homeserver's versions, with authenticated media's."""
    return await client_api.versions(runtime, hs, _token(request, runtime))


router.add_api_route("/_matrix/media/unstable/org.matrix.msc4034/usage", usage, methods=["GET"])
for _version in ("r0", "v3"):
    router.add_api_route(f"/_matrix/client/{_version}/logout", logout, methods=["POST"])
    router.add_api_route(f"/_matrix/client/{_version}/logout/all", logout_all, methods=["POST"])
router.add_api_route("/_matrix/client/versions", client_versions, methods=["GET"])
