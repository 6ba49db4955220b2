"""`tasks/all`, `tasks/unfinished`, `tasks/{taskId}`: matrix-media-repo's task status, plus
progress (`done`, `total`), the task's `result` and its `error_message` when it failed."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from services.admin.answers import is_row_number
from services.admin.audit import admin_router
from shared.auth.admin import GlobalAdminDep
from shared.db.repositories.tasks import TaskRecord, get_task, list_tasks
from shared.matrix.errors import BadRequest, NotFound
from shared.web.deps import SessionDep

router = admin_router()


def task_json(task: TaskRecord) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "task_name": task.name,
        "params": task.params,
        "start_ts": task.start_ts,
        "end_ts": task.end_ts or 0,
        "is_finished": task.is_finished,
        "error_message": task.error or "",
        "done": task.done,
        "total": task.total,
        "result": task.result,
    }


def _no_cache(body: Any) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/tasks/all")
async def all_tasks(_caller: GlobalAdminDep, session: SessionDep) -> JSONResponse:
    return _no_cache([task_json(t) for t in await list_tasks(session, include_finished=True)])


@router.get("/tasks/unfinished")
async def unfinished_tasks(_caller: GlobalAdminDep, session: SessionDep) -> JSONResponse:
    return _no_cache([task_json(t) for t in await list_tasks(session, include_finished=False)])


@router.get("/tasks/{task_id}")
async def one_task(task_id: str, _caller: GlobalAdminDep, session: SessionDep) -> JSONResponse:
    if not is_row_number(task_id):
        raise BadRequest("invalid task ID", "M_INVALID_PARAM")
    task = await get_task(session, int(task_id))
    if task is None:
        raise NotFound("No such task")
    return _no_cache(task_json(task))
