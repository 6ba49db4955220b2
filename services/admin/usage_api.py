"""Usage (matrix-media-repo's `admin/usage/...`) and Synapse's
`GET /_synapse/admin/v1/statistics/users/media`, answered from our records."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.admin.answers import MAX_INT64, check_server_name, no_store
from services.admin.audit import admin_router
from services.admin.selection import parse_mxc
from shared.auth.admin import AdminCaller, AdminDep, GlobalAdminDep
from shared.db.repositories.usage import (
    ORDER_COLUMNS,
    media_of,
    server_usage,
    user_media_stats,
)
from shared.matrix.errors import InvalidParam
from shared.web.deps import SessionDep
from shared.web.params import bounded_int_param

router = admin_router()
synapse_router = APIRouter(route_class=router.route_class)


@router.get("/usage/{server_name}")
async def domain_usage(server_name: str, _caller: GlobalAdminDep, session: SessionDep) -> JSONResponse:
    media_bytes, media_count, thumb_bytes, thumb_count = await server_usage(
        session, check_server_name(server_name))
    return no_store({
        "raw_bytes": {"total": media_bytes + thumb_bytes, "media": media_bytes,
                      "thumbnails": thumb_bytes},
        "raw_counts": {"total": media_count + thumb_count, "media": media_count,
                       "thumbnails": thumb_count},
    })


@router.get("/usage/{server_name}/users")
async def user_usage(
    server_name: str, _caller: GlobalAdminDep, session: SessionDep,
    user_id: list[str] = Query(default_factory=list),
) -> JSONResponse:
    records = await media_of(session, check_server_name(server_name), user_ids=user_id or None)
    users: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = users.setdefault(record.user_id or "", {
            "raw_bytes": {"total": 0, "media": 0}, "raw_counts": {"total": 0, "media": 0},
            "uploaded": [],
        })
        for figure, amount in (("raw_bytes", record.size_bytes), ("raw_counts", 1)):
            entry[figure]["total"] += amount
            entry[figure]["media"] += amount
        entry["uploaded"].append(record.mxc)
    return no_store(users)


@router.get("/usage/{server_name}/uploads")
async def uploads_usage(
    server_name: str, _caller: GlobalAdminDep, session: SessionDep,
    mxc: list[str] = Query(default_factory=list),
) -> JSONResponse:
    check_server_name(server_name)
    media_ids: list[str] = []
    for uri in mxc:
        parsed = parse_mxc(uri)
        if parsed is None:
            raise InvalidParam(f"not an mxc URI: {uri!r}")
        if parsed[0] != server_name:
            raise InvalidParam("MXC URIs must match the requested server")
        media_ids.append(parsed[1])
    records = await media_of(session, server_name, media_ids=media_ids or None)
    return no_store({r.mxc: {
        "size_bytes": r.size_bytes, "uploaded_by": r.user_id or "", "datastore_id": r.datastore_id,
        "datastore_location": r.location, "sha256_hash": r.sha256, "quarantined": r.quarantined,
        "upload_name": r.upload_name or "", "content_type": r.content_type or "",
        "created_ts": r.creation_ts,
    } for r in records})


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    value = bounded_int_param(request.query_params, name, 0, MAX_INT64)
    return default if value is None else value


async def _user_stats(
    server_name: str, request: Request, caller: AdminCaller, session: SessionDep
) -> JSONResponse:
    """Synapse's users' media statistics: `from`, `limit`, `order_by`, `dir`, `from_ts`,
    `until_ts`, `search_term`; `next_token` while more remain."""
    caller.require_server(check_server_name(server_name))
    order_by = request.query_params.get("order_by", "user_id")
    if order_by not in ORDER_COLUMNS:
        raise InvalidParam("Query parameter 'order_by' must be one of " + ", ".join(ORDER_COLUMNS))
    direction = request.query_params.get("dir", "f")
    if direction not in ("f", "b"):
        raise InvalidParam("Query parameter 'dir' must be one of ['f', 'b']")
    start = _int_param(request, "from", 0) or 0
    limit = _int_param(request, "limit", 100)
    from_ts = _int_param(request, "from_ts", None)
    until_ts = _int_param(request, "until_ts", None)
    if until_ts is not None and from_ts is not None and until_ts <= from_ts:
        raise InvalidParam("Query parameter 'until_ts' must be greater than 'from_ts'")
    search = request.query_params.get("search_term")
    if search is not None and search == "":
        raise InvalidParam("Query parameter 'search_term' cannot be an empty string")
    stats, total = await user_media_stats(session, server_name, order_by, direction == "f", start,
                                          limit or 0, from_ts, until_ts, search)
    body: dict[str, Any] = {
        "users": [{"user_id": s.user_id, "displayname": s.user_id, "media_count": s.media_count,
                   "media_length": s.media_length} for s in stats],
        "total": total,
    }
    if start + len(stats) < total:
        body["next_token"] = start + len(stats)
    return no_store(body)


@router.get("/usage/{server_name}/users-stats")
async def users_stats(
    server_name: str, request: Request, caller: AdminDep, session: SessionDep
) -> JSONResponse:
    return await _user_stats(server_name, request, caller, session)


@synapse_router.get("/_synapse/admin/v1/statistics/users/media")
async def synapse_users_media_stats(
    request: Request, caller: AdminDep, session: SessionDep
) -> JSONResponse:
    return await _user_stats(caller.homeserver.name, request, caller, session)
