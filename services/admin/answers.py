"""Admin answers: run a task and answer with its result in matrix-media-repo's shape, or
(when it outlasts the wait, or `?async=true`) 202 with the task's id to follow at `tasks/{id}`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from shared.auth.admin import AdminCaller
from shared.matrix.errors import InvalidParam, MatrixError
from shared.runtime import Runtime
from shared.tasks.schedule import create_task, wait_for_task

WAIT_SECONDS = 60.0
# The largest number a database integer column holds: larger query numbers are 400, not an
# overflow deep in a task.
MAX_INT64 = 2**63 - 1
SERVER_NAME = re.compile(r"^[A-Za-z0-9.\-:\[\]]+$")

Shape = Callable[[dict[str, Any]], dict[str, Any]]


def no_store(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def wants_async(request: Request) -> bool:
    return request.query_params.get("async", "").lower() in ("1", "true", "yes")


async def run_task(
    rt: Runtime, request: Request, caller: AdminCaller, name: str, params: dict[str, Any],
    shape: Shape,
) -> JSONResponse:
    record = await create_task(rt, name, params, created_by=caller.user_id)
    if wants_async(request):
        return no_store({"task_id": record.id, "is_finished": False}, status=202)
    finished = await wait_for_task(rt, record.id, WAIT_SECONDS)
    if finished is None or not finished.is_finished:
        return no_store({"task_id": record.id, "is_finished": False}, status=202)
    if finished.error:
        raise MatrixError(500, "M_UNKNOWN", f"task {record.id} failed: {finished.error}",
                          extra={"task_id": record.id})
    return no_store({**shape(finished.result or {}), "task_id": record.id})


def is_row_number(text: str) -> bool:
    """An ASCII decimal a database integer column can hold (`'²'.isdigit()` is true too)."""
    return text.isascii() and text.isdigit() and int(text) <= MAX_INT64


def now_ms() -> int:
    return int(time.time() * 1000)


def check_server_name(name: str) -> str:
    if not SERVER_NAME.match(name):
        raise InvalidParam("invalid server name")
    return name


def user_server(user_id: str) -> str:
    """The server part of `@local:server`; 400 when it is not a user ID."""
    local, sep, server = user_id.partition(":")
    if not local.startswith("@") or not sep or not server:
        raise InvalidParam(f"not a user ID: {user_id!r}")
    return server
