"""Export and import in matrix-media-repo's v2 archive format (`api/custom/exports.go`,
`imports.go`): the same paths, parameters and answers, gated by `archiving`.

Who may call: exports of a user by global admins, or (with `archiving.selfService`) by that user;
exports of a server by global admins, or (self-service) by a local admin of that server. As in
MMR, an export's ID is the capability to view, download and delete it (the view page is opened
in a browser, which sends no token); IDs are 192 random bits. Imports are for global admins and
may be sent to any admin process: parts are kept in the `archives` datastore for machine 0.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from typing import Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from services.admin.answers import is_row_number
from services.admin.archive_tasks import EXPORT, IMPORT, import_channel
from services.admin.audit import admin_router
from shared.archive.importing import ImportNotFound, store_part
from shared.archive.pages import PartLink, view_export_html
from shared.auth.admin import CallerDep, GlobalAdminDep
from shared.coordination.base import CoordinatorUnavailable
from shared.db.repositories.archives import (
    close_import,
    create_export,
    create_import,
    delete_export,
    export_parts,
    get_export,
    get_export_part,
    get_import,
    part_users,
    set_export_task,
    set_import_task,
)
from shared.matrix.disposition import content_disposition
from shared.matrix.errors import BadRequest, Forbidden, NotFound
from shared.runtime import Runtime
from shared.tasks.schedule import create_task
from shared.web.deps import RuntimeDep

router = admin_router()

ADMIN_PREFIX = "/_matrix/media/unstable/admin"
STREAM_CHUNK_BYTES = 256 * 1024
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _no_cache(body: Any) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _require_enabled(rt: Runtime) -> None:
    if not rt.request_config.archiving.enabled:
        raise BadRequest("archiving is not enabled")


def _checked_id(value: str, what: str) -> str:
    if _ID.fullmatch(value) is None:
        raise BadRequest(f"invalid {what} ID")
    return value


def _new_id() -> str:
    return secrets.token_urlsafe(24)


async def _start_export(rt: Runtime, entity: str, s3_urls: bool, created_by: str) -> JSONResponse:
    export_id = _new_id()
    # The row first: the task may start before this request ends, and looks the export up.
    async with rt.sessions() as session:
        await create_export(session, export_id, entity, int(time.time() * 1000), None)
        await session.commit()
    record = await create_task(rt, EXPORT, {
        "user_id" if entity.startswith("@") else "server_name": entity,
        "export_id": export_id, "include_s3_urls": s3_urls,
    }, created_by=created_by)
    async with rt.sessions() as session:
        await set_export_task(session, export_id, record.id)
        await session.commit()
    return _no_cache({"export_id": export_id, "task_id": record.id})


def _s3_urls(value: str | None) -> bool:
    return value != "false"


@router.post("/user/{user_id}/export")
async def export_user(user_id: str, caller: CallerDep, rt: RuntimeDep,
                      s3_urls: str | None = Query(None)) -> JSONResponse:
    _require_enabled(rt)
    if not caller.is_global_admin:
        if not rt.request_config.archiving.self_service:
            raise Forbidden("Only media repository administrators may export media")
        if caller.user_id != user_id:
            raise Forbidden("You cannot export data for another user")
    if not user_id.startswith("@") or ":" not in user_id:
        raise BadRequest("invalid user ID", "M_INVALID_PARAM")
    return await _start_export(rt, user_id, _s3_urls(s3_urls), caller.user_id)


@router.post("/server/{server_name}/export")
async def export_server(server_name: str, caller: CallerDep, rt: RuntimeDep,
                        s3_urls: str | None = Query(None)) -> JSONResponse:
    _require_enabled(rt)
    if not caller.is_global_admin:
        if not rt.request_config.archiving.self_service:
            raise Forbidden("Only media repository administrators may export media")
        if not (caller.is_local_admin and caller.homeserver.name == server_name):
            raise Forbidden("You cannot export data for another server")
    return await _start_export(rt, server_name, _s3_urls(s3_urls), caller.user_id)


async def _parts_of(rt: Runtime, export_id: str) -> tuple[str, list[PartLink]]:
    async with rt.sessions() as session:
        export = await get_export(session, _checked_id(export_id, "export"))
        if export is None:
            raise NotFound("No such export")
        parts = await export_parts(session, export_id)
    return export.entity, [PartLink(p.index, p.file_name, p.size_bytes) for p in parts]


@router.get("/export/{export_id}/view")
async def view_export(export_id: str, rt: RuntimeDep) -> HTMLResponse:
    _require_enabled(rt)
    entity, parts = await _parts_of(rt, export_id)
    return HTMLResponse(view_export_html(export_id, entity, parts, ADMIN_PREFIX),
                        headers={"Cache-Control": "no-store"})


@router.get("/export/{export_id}/metadata")
async def export_metadata(export_id: str, rt: RuntimeDep) -> JSONResponse:
    _require_enabled(rt)
    entity, parts = await _parts_of(rt, export_id)
    return _no_cache({"entity": entity, "parts": [
        {"index": p.index, "size": p.size_bytes, "name": p.file_name} for p in parts]})


@router.get("/export/{export_id}/part/{part_index}")
async def export_part(export_id: str, part_index: str, rt: RuntimeDep) -> StreamingResponse:
    _require_enabled(rt)
    if not is_row_number(part_index):
        raise BadRequest("invalid part index")
    async with rt.sessions() as session:
        part = await get_export_part(session, _checked_id(export_id, "export"), int(part_index))
    if part is None:
        raise NotFound("No such export part")
    store = rt.datastores.get(part.datastore_id)
    headers = {
        "Content-Length": str(part.size_bytes),
        "Content-Disposition": content_disposition("application/gzip", part.file_name),
        "Cache-Control": "no-store",
    }
    return StreamingResponse(store.open_stream(part.location, None, STREAM_CHUNK_BYTES),
                             media_type="application/gzip", headers=headers)


@router.delete("/export/{export_id}")
async def remove_export(export_id: str, rt: RuntimeDep) -> JSONResponse:
    _require_enabled(rt)
    async with rt.sessions() as session:
        if await get_export(session, _checked_id(export_id, "export")) is None:
            raise NotFound("No such export")
        parts = await export_parts(session, export_id)
        await delete_export(session, export_id)
        await session.commit()
    for part in parts:
        async with rt.sessions() as session:
            if await part_users(session, part.datastore_id, part.location):
                continue  # identical bytes kept for another export or import
        await rt.datastores.get(part.datastore_id).delete(part.location)
    return _no_cache({})


async def _wake(rt: Runtime, import_id: str) -> None:
    # The running import also polls, so a lost message only delays it.
    with contextlib.suppress(CoordinatorUnavailable):
        await rt.coordinator.publish(import_channel(import_id), b"part")


@router.post("/import")
async def start_import(request: Request, caller: GlobalAdminDep, rt: RuntimeDep) -> JSONResponse:
    _require_enabled(rt)
    import_id = _new_id()
    async with rt.sessions() as session:
        await create_import(session, import_id, int(time.time() * 1000))
        await session.commit()
    await store_part(rt, import_id, request.stream())
    record = await create_task(rt, IMPORT, {"export_id": import_id}, created_by=caller.user_id)
    async with rt.sessions() as session:
        await set_import_task(session, import_id, record.id)
        await session.commit()
    return _no_cache({"import_id": import_id, "task_id": record.id})


async def _open_import(rt: Runtime, import_id: str) -> None:
    async with rt.sessions() as session:
        row = await get_import(session, _checked_id(import_id, "import"))
    if row is None or row.closed:
        raise NotFound("No such import in progress")


@router.post("/import/{import_id}/part")
async def append_import(import_id: str, request: Request, _caller: GlobalAdminDep,
                        rt: RuntimeDep) -> JSONResponse:
    _require_enabled(rt)
    await _open_import(rt, import_id)
    try:
        await store_part(rt, import_id, request.stream())
    except ImportNotFound:
        raise NotFound("No such import in progress") from None
    await _wake(rt, import_id)
    return _no_cache({})


@router.post("/import/{import_id}/close")
async def stop_import(import_id: str, _caller: GlobalAdminDep, rt: RuntimeDep) -> JSONResponse:
    _require_enabled(rt)
    await _open_import(rt, import_id)
    async with rt.sessions() as session:
        await close_import(session, import_id)
        await session.commit()
    await _wake(rt, import_id)
    return _no_cache({})
