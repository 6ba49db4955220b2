"""Access token -> user, through the homeserver's whoami (cached cluster-wide)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping

import httpx
from redis.exceptions import RedisError

from shared.auth.appservices import local_appservice_user
from shared.auth.users import SHARED_SECRET_USER, UserInfo
from shared.config import HomeserverConfig, MmrConfig
from shared.coordination.base import Coordinator
from shared.matrix.errors import Forbidden, MissingToken, UnknownToken, UpstreamError

log = logging.getLogger(__name__)


def extract_token(
    headers: Mapping[str, str], query: Mapping[str, str], accept_query_token: bool
) -> str | None:
    """The bearer token from `Authorization` (or `?access_token=` when the operator allows it)."""
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    if accept_query_token:
        return query.get("access_token") or None
    return None


def token_hash_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _is_shared_secret(config: MmrConfig, token: str) -> bool:
    auth = config.shared_secret_auth
    return auth.enabled and hmac.compare_digest(auth.token.encode(), token.encode())


async def _whoami(
    http: httpx.AsyncClient, hs: HomeserverConfig, token: str, as_user_id: str | None
) -> dict[str, object]:
    if not hs.cs_api:
        raise UnknownToken()
    params = {"user_id": as_user_id} if as_user_id else None
    url = hs.cs_api.rstrip("/") + "/_matrix/client/v3/account/whoami"
    try:
        response = await http.get(url, headers={"Authorization": f"Bearer {token}"}, params=params)
    except httpx.HTTPError as exc:
        log.warning("whoami on %s failed: %s", hs.cs_api, exc)
        raise UpstreamError("The homeserver could not be reached to check the access token") from exc
    if response.status_code == 403 and as_user_id:
        # A valid appservice token asking for a user outside its namespace.
        raise Forbidden("This access token may not act as that user")
    if response.status_code in (401, 403):
        raise UnknownToken()
    if response.status_code != 200:
        raise UpstreamError(f"The homeserver answered {response.status_code} to a token check")
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("user_id"), str):
        raise UpstreamError("The homeserver's whoami answer has no user_id")
    return body


async def authenticate(
    config: MmrConfig,
    coordinator: Coordinator,
    http: httpx.AsyncClient,
    hs: HomeserverConfig,
    token: str | None,
    as_user_id: str | None = None,
) -> UserInfo:
    """Resolve a token to a user, or raise 401 `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN`."""
    if token is None:
        raise MissingToken()
    token_hash = token_hash_of(token)
    if _is_shared_secret(config, token):
        return UserInfo(SHARED_SECRET_USER, is_admin=True, is_shared_secret=True, token_hash=token_hash)
    appservice_user = local_appservice_user(config.access_tokens, token, as_user_id)
    if appservice_user is not None:
        return UserInfo(appservice_user, is_admin=appservice_user in config.admins, token_hash=token_hash)
    ttl = config.access_tokens.max_cache_time_seconds
    cache_key = f"whoami:{hs.name}:{token_hash}:{as_user_id or ''}"
    cached = await cache_get_quietly(coordinator, cache_key) if ttl else None
    if cached is not None:
        body = json.loads(cached)
    else:
        body = await _whoami(http, hs, token, as_user_id)
        if ttl:
            await cache_set_quietly(coordinator, cache_key, json.dumps(body).encode(), ttl)
    user_id = str(body["user_id"])
    return UserInfo(
        user_id=user_id,
        is_admin=user_id in config.admins,
        is_guest=bool(body.get("is_guest", False)),
        device_id=_str_or_none(body.get("device_id")),
        token_hash=token_hash,
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


# The token cache only saves whoami calls: with Redis down, ask the homeserver every time
# rather than refuse every request.
async def cache_get_quietly(coordinator: Coordinator, key: str) -> bytes | None:
    try:
        return await coordinator.cache_get(key)
    except (RedisError, OSError) as exc:
        log.warning("token cache unavailable, asking the homeserver: %r", exc)
        return None


async def cache_set_quietly(coordinator: Coordinator, key: str, value: bytes, ttl: float) -> None:
    try:
        await coordinator.cache_set(key, value, ttl)
    except (RedisError, OSError) as exc:
        log.warning("token cache unavailable, not caching: %r", exc)
