"""The audit log: every mutating admin call (who, what, when, how it ended), and `GET audit`.

Admin routers are built with `admin_router()`, whose routes record themselves: a call with any
method but GET/HEAD writes one entry after it is answered, refused and failed calls included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from shared.auth.admin import GlobalAdminDep
from shared.db.repositories.audit import AuditEntry, audit_page, insert_audit
from shared.matrix.errors import MatrixError
from shared.runtime import Runtime
from shared.web.deps import RuntimeDep, SessionDep

log = logging.getLogger(__name__)

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DETAIL_MAX_CHARS = 500


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "refused"
    return "failed"


async def record_call(rt: Runtime, request: Request, status: int, detail: str | None) -> None:
    """Write one audit entry; a failure to write is logged, never turned into the answer."""
    entry = AuditEntry(
        id=0, ts=int(time.time() * 1000), user_id=getattr(request.state, "admin_user_id", None),
        method=request.method, path=request.url.path, query=request.url.query or None,
        status=status, outcome=_outcome(status),
        detail=detail[:DETAIL_MAX_CHARS] if detail else None,
    )
    try:
        async with rt.sessions() as session:
            await insert_audit(session, entry)
            await session.commit()
    except Exception:
        log.exception("could not write the audit entry for %s %s", request.method, request.url.path)


class AuditedRoute(APIRoute):
    """An APIRoute that writes an audit entry for every mutating call."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def audited(request: Request) -> Response:
            if request.method in READ_ONLY_METHODS:
                return await handler(request)
            rt: Runtime = request.app.state.runtime
            try:
                response = await handler(request)
            except MatrixError as exc:
                await record_call(rt, request, exc.status, f"{exc.errcode}: {exc.error}")
                raise
            except RequestValidationError:
                await record_call(rt, request, 400, "invalid parameters")
                raise
            except Exception as exc:
                await record_call(rt, request, 500, type(exc).__name__)
                raise
            await record_call(rt, request, response.status_code, None)
            return response

        return audited


def admin_router() -> APIRouter:
    """A router for admin routes (paths relative to the admin prefixes), audited."""
    return APIRouter(route_class=AuditedRoute)


router = admin_router()

AUDIT_PAGE_MAX = 500


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "ts": entry.ts, "user_id": entry.user_id, "method": entry.method,
        "path": entry.path, "query": entry.query, "status": entry.status,
        "outcome": entry.outcome, "detail": entry.detail,
    }


@router.get("/audit")
async def get_audit(
    _caller: GlobalAdminDep,
    rt: RuntimeDep,
    session: SessionDep,
    from_: int | None = Query(None, alias="from", ge=1, description="next_token of the page before"),
    limit: int = Query(100, ge=1, le=AUDIT_PAGE_MAX),
) -> dict[str, Any]:
    """Newest first; `next_token` (when more remain) is the `from` of the next page."""
    entries = await audit_page(session, from_, limit + 1)
    page, more = entries[:limit], len(entries) > limit
    body: dict[str, Any] = {"entries": [_entry_json(e) for e in page]}
    if more and page:
        body["next_token"] = page[-1].id
    return body
