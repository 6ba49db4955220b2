"""Purges (matrix-media-repo's `admin/purge/...`): long ones run as `purge_media` tasks.

Who may purge what follows matrix-media-repo: remote and old media only global admins; a
server's, a user's, a room's or the quarantined media also local admins, limited to their own
homeserver's media; one item also its uploader. Pinned media is never purged.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.admin.answers import (
    MAX_INT64,
    Shape,
    check_server_name,
    no_store,
    now_ms,
    run_task,
    user_server,
)
from services.admin.audit import admin_router
from services.admin.homeserver import room_media
from services.admin.purging import PURGE_TASK
from services.admin.selection import parse_mxc, selector_to_json
from shared.auth.admin import AdminCaller, AdminDep, CallerDep, GlobalAdminDep
from shared.db.repositories.attributes import is_pinned
from shared.db.repositories.media import get_media
from shared.db.repositories.media_selection import MediaSelector
from shared.matrix.errors import Forbidden, NotFound
from shared.media.purge import forget_media
from shared.runtime import Runtime
from shared.web.deps import RuntimeDep

router = admin_router()

BeforeTs = Query(None, ge=0, le=MAX_INT64, description="ms since the epoch; default now")


def _local_origins(rt: Runtime) -> tuple[str, ...]:
    return tuple(hs.name for hs in rt.config.homeservers)


def _affected(result: dict[str, Any]) -> dict[str, Any]:
    return {"purged": True, "affected": result.get("affected", [])}


def _removed(result: dict[str, Any]) -> dict[str, Any]:
    return {"total_removed": result.get("total_removed", 0)}


def purge_params(selector: MediaSelector) -> dict[str, Any]:
    """The params of a `purge_media` task over `selector`."""
    return {"selector": selector_to_json(selector)}


async def _purge(rt: Runtime, request: Request, caller: AdminCaller, selector: MediaSelector,
                 shape: Shape = _affected) -> JSONResponse:
    return await run_task(rt, request, caller, PURGE_TASK, purge_params(selector), shape)


def remote_selector(rt: Runtime, before_ts: int) -> MediaSelector:
    """Cached remote media fetched before `before_ts`, except quarantined and pinned media."""
    return MediaSelector(not_origins=_local_origins(rt), created_before=before_ts, quarantined=False)


async def purge_remote(
    rt: Runtime, request: Request, caller: AdminCaller, before_ts: int, shape: Shape = _removed
) -> JSONResponse:
    return await _purge(rt, request, caller, remote_selector(rt, before_ts), shape)


@router.post("/purge/remote")
@router.post("/purge_remote")
async def purge_remote_route(
    request: Request, rt: RuntimeDep, caller: GlobalAdminDep,
    before_ts: int = Query(..., ge=0, le=MAX_INT64)
) -> JSONResponse:
    return await purge_remote(rt, request, caller, before_ts)


@router.post("/purge/old")
async def purge_old(
    request: Request, rt: RuntimeDep, caller: GlobalAdminDep,
    before_ts: int | None = BeforeTs, include_local: bool = False,
) -> JSONResponse:
    """Media last used (downloaded, else stored) before `before_ts`; local media only with
    `include_local`."""
    selector = MediaSelector(
        not_origins=None if include_local else _local_origins(rt),
        used_before=before_ts if before_ts is not None else now_ms(),
    )
    return await _purge(rt, request, caller, selector)


@router.post("/purge/quarantined")
async def purge_quarantined(request: Request, rt: RuntimeDep, caller: AdminDep) -> JSONResponse:
    origins = None if caller.is_global_admin else (caller.homeserver.name,)
    return await _purge(rt, request, caller, MediaSelector(quarantined=True, origins=origins))


@router.post("/purge/user/{user_id}")
async def purge_user(
    user_id: str, request: Request, rt: RuntimeDep, caller: AdminDep, before_ts: int | None = BeforeTs,
) -> JSONResponse:
    caller.require_server(user_server(user_id))
    selector = MediaSelector(user_id=user_id,
                             created_before=before_ts if before_ts is not None else now_ms())
    return await _purge(rt, request, caller, selector)


@router.post("/purge/room/{room_id}")
async def purge_room(
    room_id: str, request: Request, rt: RuntimeDep, caller: AdminDep, before_ts: int | None = BeforeTs,
) -> JSONResponse:
    """The room's media as the homeserver lists it (local admins: their homeserver's only),
    stored before `before_ts` (matrix-media-repo parses it, then purges the whole room)."""
    listed = await room_media(rt.http, caller.homeserver, caller.token, room_id)
    mxcs = tuple(dict.fromkeys(m for m in (parse_mxc(u) for u in listed) if m is not None))
    origins = None if caller.is_global_admin else (caller.homeserver.name,)
    selector = MediaSelector(mxcs=mxcs, origins=origins,
                             created_before=before_ts if before_ts is not None else now_ms())
    return await _purge(rt, request, caller, selector)


@router.post("/purge/server/{server_name}")
async def purge_server(
    server_name: str, request: Request, rt: RuntimeDep, caller: AdminDep,
    before_ts: int | None = BeforeTs,
) -> JSONResponse:
    caller.require_server(check_server_name(server_name))
    selector = MediaSelector(origins=(server_name,),
                             created_before=before_ts if before_ts is not None else now_ms())
    return await _purge(rt, request, caller, selector)


async def purge_one(rt: Runtime, caller: AdminCaller, server_name: str, media_id: str) -> None:
    """Purge one item: its uploader, a local admin of its homeserver or a global admin."""
    async with rt.sessions() as session:
        record = await get_media(session, check_server_name(server_name), media_id)
        if record is None:
            raise NotFound()
        pinned = await is_pinned(session, server_name, media_id)
    own_upload = record.user_id is not None and record.user_id == caller.user_id
    if not (caller.may_act_on(record.origin) or own_upload):
        raise Forbidden("You may only purge your own media")
    if pinned or not await forget_media(rt, server_name, media_id):
        raise Forbidden("Pinned media is never purged: set its purpose to none first")


@router.post("/purge/{server_name}/{media_id}")
async def purge_single(
    server_name: str, media_id: str, rt: RuntimeDep, caller: CallerDep
) -> JSONResponse:
    await purge_one(rt, caller, server_name, media_id)
    return no_store({"purged": True})


# `DELETE /_matrix/media/unstable/download/{server}/{mediaId}`: the same single purge.
download_router = APIRouter(route_class=router.route_class)
for _prefix in ("/_matrix/media/unstable", "/_matrix/media/unstable/io.t2bot.media"):
    download_router.add_api_route(_prefix + "/download/{server_name}/{media_id}", purge_single,
                                  methods=["DELETE"], name="delete_download")
