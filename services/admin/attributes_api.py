"""`GET|POST media/{server}/{mediaId}/attributes`: `{"purpose": "none"|"pinned"}`; pinned media
is left alone by every purge. Global admins, or local admins for their homeserver's media."""

from __future__ import annotations

from typing import Any

from fastapi import Body
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.admin.answers import check_server_name, no_store
from services.admin.audit import admin_router
from shared.auth.admin import AdminCaller, AdminDep
from shared.db.repositories.attributes import PURPOSES, get_purpose, set_purpose
from shared.db.repositories.media import get_media
from shared.matrix.errors import BadRequest, NotFound
from shared.web.deps import SessionDep

router = admin_router()


@router.get("/media/{server_name}/{media_id}/attributes")
async def get_attributes(
    server_name: str, media_id: str, caller: AdminDep, session: SessionDep
) -> JSONResponse:
    caller.require_server(check_server_name(server_name))
    if await get_media(session, server_name, media_id) is None:
        raise NotFound()
    return no_store({"purpose": await get_purpose(session, server_name, media_id)})


@router.post("/media/{server_name}/{media_id}/attributes")
async def set_attributes(
    server_name: str, media_id: str, caller: AdminDep, session: SessionDep,
    body: dict[str, Any] = Body(...),
) -> JSONResponse:
    purpose = await set_media_purpose(session, caller, server_name, media_id, body.get("purpose"))
    return no_store({"purpose": purpose})


async def set_media_purpose(
    session: AsyncSession, caller: AdminCaller, server_name: str, media_id: str, purpose: Any
) -> str:
    """Set one item's purpose (also the console's pin button) and commit."""
    caller.require_server(check_server_name(server_name))
    if purpose not in PURPOSES:
        raise BadRequest("unknown purpose: use one of " + ", ".join(PURPOSES), "M_INVALID_PARAM")
    if await get_media(session, server_name, media_id) is None:
        raise NotFound()
    await set_purpose(session, server_name, media_id, str(purpose))
    await session.commit()
    return str(purpose)
