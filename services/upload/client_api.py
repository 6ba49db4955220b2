"""The client-server endpoints matrix-media-repo answers besides media: logouts (passed on to
the homeserver, then our token cache forgets), `/versions` (the homeserver's, plus the spec
version authenticated media needs) and MSC4034's storage usage.

The ingress sends these paths here instead of to the homeserver (deploy/), as MMR's docs ask,
so that a logged-out token stops working on the media routes at once, not when its cached
whoami answer expires.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from shared.auth.tokens import forget_token, forget_user_tokens
from shared.auth.users import UserInfo
from shared.config import HomeserverConfig
from shared.db.repositories.quotas import user_usage
from shared.matrix.errors import MatrixError, UpstreamError
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# Authenticated media (MSC3916) is Matrix v1.11: a client that sees it uses /client/v1/media.
AUTHENTICATED_MEDIA_VERSION = "v1.11"


async def _homeserver_call(
    rt: Runtime, hs: HomeserverConfig, method: str, path: str, token: str | None,
    as_user_id: str | None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"user_id": as_user_id} if as_user_id else None
    try:
        return await rt.http.request(method, hs.cs_api.rstrip("/") + path, headers=headers,
                                     params=params)
    except httpx.HTTPError as exc:
        log.warning("%s %s on %s failed: %s", method, path, hs.cs_api, exc)
        raise UpstreamError("The homeserver could not be reached") from exc


def _passed_on_error(response: httpx.Response) -> MatrixError:
    """The homeserver's own Matrix error, or a 502 when it did not answer with one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errcode"), str) and response.status_code < 500:
        extra = {k: v for k, v in body.items() if k not in ("errcode", "error")}
        return MatrixError(response.status_code, body["errcode"], str(body.get("error", "")),
                           extra=extra)
    return UpstreamError(f"The homeserver answered {response.status_code}")


async def logout(
    rt: Runtime, hs: HomeserverConfig, user: UserInfo, token: str, as_user_id: str | None,
    everywhere: bool,
) -> dict[str, Any]:
    """`POST /_matrix/client/{r0,v3}/logout[/all]`: the homeserver logs the token (or every
    token of the user) out; then no process of ours believes a cached answer for it."""
    if user.is_shared_secret or not hs.cs_api:
        return {}  # not a homeserver token: nothing to log out there
    path = "/_matrix/client/v3/logout/all" if everywhere else "/_matrix/client/v3/logout"
    response = await _homeserver_call(rt, hs, "POST", path, token, as_user_id)
    if response.status_code in (200, 401):  # 401: the token is dead either way
        await forget_token(rt.coordinator, rt.local_tokens, hs, token, as_user_id)
        if everywhere:
            await forget_user_tokens(rt.coordinator, rt.local_tokens, rt.config, hs,
                                     user.user_id)
    if response.status_code != 200:
        raise _passed_on_error(response)
    return {}


async def versions(rt: Runtime, hs: HomeserverConfig, token: str | None) -> dict[str, Any]:
    """`GET /_matrix/client/versions`: the homeserver's answer with v1.11 added (as MMR does:
    pointing /versions at the media repo opts in to authenticated media)."""
    answer: dict[str, Any] = {"versions": [], "unstable_features": {}}
    if hs.cs_api:
        response = await _homeserver_call(rt, hs, "GET", "/_matrix/client/versions", token, None)
        if response.status_code != 200:
            raise _passed_on_error(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError("The homeserver's /versions answer is not JSON") from exc
        if isinstance(body, dict):
            answer.update(body)
    listed = answer.get("versions")
    versions_list = [v for v in listed if isinstance(v, str)] if isinstance(listed, list) else []
    if AUTHENTICATED_MEDIA_VERSION not in versions_list:
        versions_list.append(AUTHENTICATED_MEDIA_VERSION)
    answer["versions"] = versions_list
    return answer


async def usage(rt: Runtime, user: UserInfo) -> dict[str, int]:
    """MSC4034: what the user stores (bytes and files); zero values are left out, as in MMR."""
    async with rt.sessions() as session:
        used = await user_usage(session, user.user_id)
    answer = {"org.matrix.msc4034.storage.used": used.bytes,
              "org.matrix.msc4034.storage.files": used.files}
    return {key: value for key, value in answer.items() if value}
