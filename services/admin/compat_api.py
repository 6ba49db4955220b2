"""Synapse-compatible admin aliases that operators' tools already call, answered from our data
in Synapse's shapes, and matrix-media-repo's `/_matrix/client/*/admin/...` aliases in its own."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.admin.answers import MAX_INT64, no_store
from services.admin.audit import AuditedRoute
from services.admin.purge_api import purge_one, purge_remote
from services.admin.quarantine_api import quarantine_one, room_endpoint, user_endpoint
from shared.auth.admin import CallerDep, GlobalAdminDep, QuarantineAdminDep
from shared.web.deps import RuntimeDep

router = APIRouter(route_class=AuditedRoute)
SYNAPSE = "/_synapse/admin/v1"
CLIENT_VERSIONS = ("r0", "v3", "unstable", "unstable/io.t2bot.media")


@router.post(SYNAPSE + "/media/quarantine/{server_name}/{media_id}")
async def synapse_quarantine(server_name: str, media_id: str, rt: RuntimeDep,
                             caller: QuarantineAdminDep) -> JSONResponse:
    await quarantine_one(rt, caller, server_name, media_id, True)
    return no_store({})


@router.post(SYNAPSE + "/media/unquarantine/{server_name}/{media_id}")
async def synapse_unquarantine(server_name: str, media_id: str, rt: RuntimeDep,
                               caller: QuarantineAdminDep) -> JSONResponse:
    await quarantine_one(rt, caller, server_name, media_id, False)
    return no_store({})


@router.delete(SYNAPSE + "/media/{server_name}/{media_id}")
async def synapse_delete_media(server_name: str, media_id: str, rt: RuntimeDep,
                               caller: CallerDep) -> JSONResponse:
    await purge_one(rt, caller, server_name, media_id)
    return no_store({"deleted_media": [media_id], "total": 1})


@router.post(SYNAPSE + "/purge_media_cache")
async def synapse_purge_media_cache(request: Request, rt: RuntimeDep, caller: GlobalAdminDep,
                                    before_ts: int = Query(..., ge=0, le=MAX_INT64)) -> JSONResponse:
    return await purge_remote(rt, request, caller, before_ts,
                              shape=lambda result: {"deleted": result.get("total_removed", 0)})


router.add_api_route(SYNAPSE + "/room/{room_id}/media/quarantine", room_endpoint(True),
                     methods=["POST"], name="synapse_quarantine_room")
router.add_api_route(SYNAPSE + "/user/{user_id}/media/quarantine", user_endpoint(True),
                     methods=["POST"], name="synapse_quarantine_user")


async def client_purge_media_cache(request: Request, rt: RuntimeDep, caller: GlobalAdminDep,
                                   before_ts: int = Query(..., ge=0, le=MAX_INT64)) -> JSONResponse:
    return await purge_remote(rt, request, caller, before_ts)


for _version in CLIENT_VERSIONS:
    router.add_api_route(f"/_matrix/client/{_version}/admin/purge_media_cache",
                         client_purge_media_cache, methods=["POST"])
    router.add_api_route(f"/_matrix/client/{_version}/admin/quarantine_media/{{room_id}}",
                         room_endpoint(True), methods=["POST"], name="client_quarantine_room")
