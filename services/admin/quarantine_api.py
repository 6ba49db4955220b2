"""Quarantine and unquarantine (matrix-media-repo's `admin/quarantine/...`, plus the release
it lacks): one item at once, a room's, a user's or a server's media as `quarantine_media` tasks.

Global admins change every record with the same bytes; local admins (while
`quarantine.allowLocalAdmins`) only their homeserver's records, and only its media.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from services.admin.answers import check_server_name, no_store, run_task, user_server
from services.admin.audit import admin_router
from services.admin.homeserver import room_media
from services.admin.quarantining import QUARANTINE_TASK, set_quarantine_for_hash
from services.admin.selection import parse_mxc, selector_to_json
from shared.auth.admin import AdminCaller, QuarantineAdminDep
from shared.db.repositories.media import get_media
from shared.db.repositories.media_selection import MediaSelector
from shared.matrix.errors import BadRequest, NotFound
from shared.runtime import Runtime
from shared.web.deps import RuntimeDep

router = admin_router()


def _shape(result: dict[str, Any]) -> dict[str, Any]:
    return {"num_quarantined": result.get("num_quarantined", 0)}


def _origin_limit(caller: AdminCaller) -> str | None:
    return None if caller.is_global_admin else caller.homeserver.name


async def quarantine_one(
    rt: Runtime, caller: AdminCaller, server_name: str, media_id: str, flag: bool
) -> int:
    check_server_name(server_name)
    if not caller.may_act_on(server_name):
        raise BadRequest("unable to quarantine media on other homeservers")
    async with rt.sessions() as session:
        record = await get_media(session, server_name, media_id)
    if record is None:
        raise NotFound()
    return await set_quarantine_for_hash(rt, record.sha256, flag, _origin_limit(caller))


async def quarantine_selection(
    rt: Runtime, request: Request, caller: AdminCaller, selector: MediaSelector, flag: bool,
    shape: Any = _shape,
) -> JSONResponse:
    params = {"selector": selector_to_json(selector), "quarantined": flag,
              "origin": _origin_limit(caller)}
    return await run_task(rt, request, caller, QUARANTINE_TASK, params, shape)


async def room_selector(rt: Runtime, caller: AdminCaller, room_id: str) -> MediaSelector:
    listed = await room_media(rt.http, caller.homeserver, caller.token, room_id)
    mxcs = tuple(dict.fromkeys(m for m in (parse_mxc(u) for u in listed) if m is not None))
    origins = None if caller.is_global_admin else (caller.homeserver.name,)
    return MediaSelector(mxcs=mxcs, origins=origins, include_pinned=True)


Endpoint = Callable[..., Awaitable[JSONResponse]]


def room_endpoint(flag: bool) -> Endpoint:
    """`POST .../room/{room_id}`: (un)quarantine a room's media (also Synapse's alias)."""

    async def room(room_id: str, request: Request, rt: RuntimeDep,
                   caller: QuarantineAdminDep) -> JSONResponse:
        selector = await room_selector(rt, caller, room_id)
        return await quarantine_selection(rt, request, caller, selector, flag)

    return room


def user_endpoint(flag: bool) -> Endpoint:
    """`POST .../user/{user_id}`: (un)quarantine a user's media (also Synapse's alias)."""

    async def user(user_id: str, request: Request, rt: RuntimeDep,
                   caller: QuarantineAdminDep) -> JSONResponse:
        caller.require_server(user_server(user_id))
        selector = MediaSelector(user_id=user_id, include_pinned=True)
        return await quarantine_selection(rt, request, caller, selector, flag)

    return user


def _register(verb: str, flag: bool) -> None:
    async def server(server_name: str, request: Request, rt: RuntimeDep,
                     caller: QuarantineAdminDep) -> JSONResponse:
        caller.require_server(check_server_name(server_name))
        selector = MediaSelector(origins=(server_name,), include_pinned=True)
        return await quarantine_selection(rt, request, caller, selector, flag)

    async def single(server_name: str, media_id: str, rt: RuntimeDep,
                     caller: QuarantineAdminDep) -> JSONResponse:
        return no_store({"num_quarantined": await quarantine_one(rt, caller, server_name,
                                                                 media_id, flag)})

    router.add_api_route(f"/{verb}/room/{{room_id}}", room_endpoint(flag), methods=["POST"],
                         name=f"{verb}_room")
    router.add_api_route(f"/{verb}/user/{{user_id}}", user_endpoint(flag), methods=["POST"],
                         name=f"{verb}_user")
    router.add_api_route(f"/{verb}/server/{{server_name}}", server, methods=["POST"],
                         name=f"{verb}_server")
    router.add_api_route(f"/{verb}/{{server_name}}/{{media_id}}", single, methods=["POST"],
                         name=f"{verb}_media")


_register("quarantine", True)
_register("unquarantine", False)
