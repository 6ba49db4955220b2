"""Who may call the admin API: global admins, and local admins of a homeserver.

* Global admins: users listed in `admins`, and the shared secret (`sharedSecretAuth`).
* Local admins: admins of the homeserver the request's Host selects, asked of that homeserver
  as matrix-media-repo does: its admin whois endpoint, called with the caller's own token for a
  user that is not the caller (whois of oneself is allowed to anyone), answers 200 only to an
  admin. `homeservers[].adminApiKind` picks Synapse's `/_synapse/admin/v1/whois/{userId}` or
  the spec's `/_matrix/client/v3/admin/whois/{userId}`. Answers are cached cluster-wide for
  `accessTokens.maxCacheTimeSeconds`, like token checks.

Routes declare what they need with the dependencies at the bottom: `GlobalAdminDep`,
`AdminDep` (global or local), `QuarantineAdminDep` (local ones only while
`quarantine.allowLocalAdmins`) and `CallerDep` (any user, with its admin standing, for routes
where an uploader may act on their own media). No token is 401; anyone else is 403 M_FORBIDDEN.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import Depends, Request

from shared.auth.tokens import (
    authenticate,
    cache_get_quietly,
    cache_set_quietly,
    extract_token,
    token_hash_of,
)
from shared.auth.users import UserInfo
from shared.config import HomeserverConfig, MmrConfig
from shared.coordination.base import Coordinator
from shared.matrix.errors import Forbidden, MissingToken, UpstreamError
from shared.runtime import Runtime
from shared.web.deps import HomeserverDep, RuntimeDep

log = logging.getLogger(__name__)

ADMIN_CHECK_LOCALPART = "media.repo.admin.check"


@dataclass(frozen=True)
class AdminCaller:
    """The caller of an admin route and what they may touch."""

    user: UserInfo
    homeserver: HomeserverConfig
    is_global_admin: bool
    is_local_admin: bool
    token: str | None = None

    @property
    def user_id(self) -> str:
        return self.user.user_id

    @property
    def is_admin(self) -> bool:
        return self.is_global_admin or self.is_local_admin

    def may_act_on(self, server_name: str) -> bool:
        """Global admins act on any server's media, local admins on their homeserver's only."""
        return self.is_global_admin or (self.is_local_admin and server_name == self.homeserver.name)

    def require_server(self, server_name: str) -> None:
        if not self.may_act_on(server_name):
            raise Forbidden("You may only act on media of your own homeserver")


def whois_path(hs: HomeserverConfig, user_id: str) -> str:
    if hs.admin_api_kind == "synapse":
        return f"/_synapse/admin/v1/whois/{quote(user_id, safe='')}"
    return f"/_matrix/client/v3/admin/whois/{quote(user_id, safe='')}"


async def _ask_homeserver(http: httpx.AsyncClient, hs: HomeserverConfig, token: str) -> bool:
    url = hs.cs_api.rstrip("/") + whois_path(hs, f"@{ADMIN_CHECK_LOCALPART}:{hs.name}")
    try:
        response = await http.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        log.warning("admin whois on %s failed: %s", hs.cs_api, exc)
        raise UpstreamError("The homeserver could not be reached to check admin rights") from exc
    if response.status_code == 200:
        return True
    if response.status_code in (400, 401, 403, 404):
        return False
    raise UpstreamError(f"The homeserver answered {response.status_code} to an admin check")


async def is_local_admin(
    config: MmrConfig, coordinator: Coordinator, http: httpx.AsyncClient,
    hs: HomeserverConfig, token: str, cached_after: float = 0.0,
) -> bool:
    """Whether `token` belongs to an admin of `hs` (cached like token checks, and like them
    not believed from before `cached_after`)."""
    if not hs.cs_api:
        return False
    ttl = config.access_tokens.max_cache_time_seconds
    key = f"adminwhois:{hs.name}:{token_hash_of(token)}"
    cached = await cache_get_quietly(coordinator, key) if ttl else None
    if cached is not None:
        # "1:<when cached>" (or a bare "1"/"0" written by an older version: time unknown)
        flag, _, when = cached.decode().partition(":")
        if (float(when) if when else 0.0) >= cached_after:
            return flag == "1"
    answer = await _ask_homeserver(http, hs, token)
    if ttl:
        value = f"{'1' if answer else '0'}:{time.time()}".encode()
        await cache_set_quietly(coordinator, key, value, ttl)
    return answer


def _note_caller(request: Request, user_id: str) -> None:
    # Read by the audit log, which records who made each mutating call.
    request.state.admin_user_id = user_id


async def get_caller(request: Request, rt: RuntimeDep, hs: HomeserverDep) -> AdminCaller:
    """Any authenticated user, with their admin standing (local asked only of non-global ones)."""
    token = extract_token(request.headers, request.query_params, rt.config.repo.accept_query_access_token)
    if token is None:
        raise MissingToken()
    return await caller_for_token(request, rt, hs, token)


async def caller_for_token(
    request: Request, rt: Runtime, hs: HomeserverConfig, token: str
) -> AdminCaller:
    """The caller `token` belongs to (the console's session keeps a token instead of a header)."""
    user = await authenticate(rt.config.for_domain(hs.name), rt.coordinator, rt.local_tokens,
                              rt.http, hs, token, cached_after=rt.token_cache_flushed_at)
    _note_caller(request, user.user_id)
    if user.is_shared_secret or user.user_id in rt.config.admins:
        return AdminCaller(user, hs, is_global_admin=True, is_local_admin=False, token=token)
    local = (not user.is_guest) and await is_local_admin(
        rt.config, rt.coordinator, rt.http, hs, token, rt.token_cache_flushed_at)
    return AdminCaller(user, hs, is_global_admin=False, is_local_admin=local, token=token)


CallerDep = Annotated[AdminCaller, Depends(get_caller)]


async def require_global_admin(caller: CallerDep) -> AdminCaller:
    if not caller.is_global_admin:
        raise Forbidden("Only media repository administrators may do this")
    return caller


async def require_admin(caller: CallerDep) -> AdminCaller:
    if not caller.is_admin:
        raise Forbidden("Only administrators may do this")
    return caller


async def require_quarantine_admin(caller: CallerDep, rt: RuntimeDep) -> AdminCaller:
    if caller.is_global_admin:
        return caller
    if caller.is_local_admin and rt.request_config.quarantine.allow_local_admins:
        return caller
    raise Forbidden("Only administrators may quarantine media")


GlobalAdminDep = Annotated[AdminCaller, Depends(require_global_admin)]
AdminDep = Annotated[AdminCaller, Depends(require_admin)]
QuarantineAdminDep = Annotated[AdminCaller, Depends(require_quarantine_admin)]
