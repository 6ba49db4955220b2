"""`datastores`, `datastores/{id}/size_estimate`, `datastores/{src}/transfer_to/{dst}`, with
matrix-media-repo's answers (`api/custom/datastores.go`); global admins only."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.archive_tasks import TRANSFER
from services.admin.audit import admin_router
from shared.auth.admin import AdminCaller, GlobalAdminDep
from shared.db.repositories.datastore_objects import size_estimate
from shared.matrix.errors import BadRequest, NotFound
from shared.runtime import Runtime
from shared.tasks.schedule import create_task
from shared.web.deps import RuntimeDep, SessionDep

router = admin_router()


def _no_cache(body: Any) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _before_ts(value: str | None) -> int:
    if value is None or value == "":
        return int(time.time() * 1000)
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Error parsing before_ts: {value!r} is not an integer",
                         "M_INVALID_PARAM") from None


def _known(rt: Runtime, datastore_id: str) -> bool:
    return any(store.id == datastore_id for store in rt.datastores.all())


@router.get("/datastores")
async def list_datastores(_caller: GlobalAdminDep, rt: RuntimeDep) -> JSONResponse:
    return _no_cache({store.id: {"type": store.type, "uri": store.uri}
                      for store in rt.datastores.all()})


@router.get("/datastores/{datastore_id}/size_estimate")
async def estimate(datastore_id: str, _caller: GlobalAdminDep, rt: RuntimeDep, session: SessionDep,
                   before_ts: str | None = Query(None)) -> JSONResponse:
    if not _known(rt, datastore_id):
        raise NotFound("No datastore with that ID is configured")
    return _no_cache(asdict(await size_estimate(session, datastore_id, _before_ts(before_ts))))


@router.post("/datastores/{source_id}/transfer_to/{target_id}")
async def transfer(source_id: str, target_id: str, caller: GlobalAdminDep, rt: RuntimeDep,
                   session: SessionDep, before_ts: str | None = Query(None)) -> JSONResponse:
    return _no_cache(await start_transfer(rt, session, caller, source_id, target_id,
                                          _before_ts(before_ts)))


async def start_transfer(rt: Runtime, session: AsyncSession, caller: AdminCaller, source_id: str,
                         target_id: str, cutoff: int) -> dict[str, Any]:
    """Start a transfer task (also the console's); its size estimate and `task_id`."""
    if source_id == target_id:
        raise BadRequest("Source and target datastore cannot be the same")
    if not _known(rt, source_id):
        raise BadRequest("Source datastore does not appear to exist")
    if not _known(rt, target_id):
        raise BadRequest("Target datastore does not appear to exist")
    answer = asdict(await size_estimate(session, source_id, cutoff))
    record = await create_task(rt, TRANSFER, {
        "source_datastore_id": source_id, "target_datastore_id": target_id, "before_ts": cutoff,
    }, created_by=caller.user_id)
    return {**answer, "task_id": record.id}
