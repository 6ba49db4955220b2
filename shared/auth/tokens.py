"""Access token -> user, through the homeserver's whoami (cached cluster-wide, and for a few
seconds in the process itself)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping

import httpx

from shared.auth.appservices import local_appservice_user
from shared.auth.users import SHARED_SECRET_USER, UserInfo
from shared.config import HomeserverConfig, MmrConfig
from shared.coordination.base import Coordinator, CoordinatorUnavailable
from shared.coordination.listener import ChannelListener
from shared.expiring_lru import ExpiringLru
from shared.matrix.errors import Forbidden, MatrixError, MissingToken, UnknownToken, UpstreamError

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


BREAKER_OPEN_SECONDS = 60.0


async def _whoami_with_breaker(
    coordinator: Coordinator, http: httpx.AsyncClient, hs: HomeserverConfig, token: str,
    as_user_id: str | None,
) -> dict[str, object]:
    """whoami behind MMR's breaker: `backoffAt` consecutive failures of a homeserver (no answer,
    or an error status) stop asking it for a minute, cluster-wide; then one try goes through."""
    key = f"cs:breaker:{hs.name}"
    raw = await cache_get_quietly(coordinator, key)
    state = json.loads(raw) if raw else {}
    if float(state.get("open_until", 0)) > time.time():
        raise UpstreamError("The homeserver failed too often recently to check access tokens")
    try:
        body = await _whoami(http, hs, token, as_user_id)
    except UpstreamError:
        failures = int(state.get("failures", 0)) + 1
        open_until = time.time() + BREAKER_OPEN_SECONDS if failures >= hs.backoff_at else 0
        if open_until:
            log.warning("homeserver %s: %d failed token checks, pausing them for %.0fs",
                        hs.name, failures, BREAKER_OPEN_SECONDS)
        value = json.dumps({"failures": failures, "open_until": open_until}).encode()
        await cache_set_quietly(coordinator, key, value, 3600)
        raise
    except MatrixError:  # the homeserver answered (e.g. an unknown token): it is healthy
        if state:
            await _cache_delete(coordinator, key)
        raise
    if state:
        await _cache_delete(coordinator, key)
    return body


async def authenticate(
    config: MmrConfig,
    coordinator: Coordinator,
    local: LocalTokenCache,
    http: httpx.AsyncClient,
    hs: HomeserverConfig,
    token: str | None,
    as_user_id: str | None = None,
    cached_after: float = 0.0,
) -> UserInfo:
    """Resolve a token to a user, or raise 401 `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN`.

    `local` is this process's own cache (`Runtime.local_tokens`), in front of the cluster-wide
    one. A cached answer older than `cached_after` (when this process last flushed its token
    cache, on SIGHUP: `Runtime.token_cache_flushed_at`) is not believed.
    """
    if token is None:
        raise MissingToken()
    token_hash = token_hash_of(token)
    if _is_shared_secret(config, token):
        return UserInfo(SHARED_SECRET_USER, is_admin=True, is_shared_secret=True, token_hash=token_hash)
    appservice_user = local_appservice_user(config.access_tokens, token, as_user_id)
    if appservice_user is not None:
        return UserInfo(appservice_user, is_admin=appservice_user in config.admins, token_hash=token_hash)
    ttl = config.access_tokens.max_cache_time_seconds
    cache_key = _cache_key(hs, token_hash, as_user_id)
    body = None
    if ttl:
        await local.listen(coordinator)
        body = local.get(cache_key)
        if body is None:
            body = await _cached_whoami(coordinator, hs, cache_key, cached_after)
            if body is not None:
                local.put(cache_key, body, ttl)
    if body is None:
        body = await _whoami_with_breaker(coordinator, http, hs, token, as_user_id)
        if ttl:
            cached = {**body, CACHED_AT: time.time()}
            await cache_set_quietly(coordinator, cache_key, json.dumps(cached).encode(), ttl)
            local.put(cache_key, cached, ttl)
    user_id = str(body["user_id"])
    return UserInfo(
        user_id=user_id,
        is_admin=user_id in config.admins,
        is_guest=bool(body.get("is_guest", False)),
        device_id=_str_or_none(body.get("device_id")),
        token_hash=token_hash,
    )


CACHED_AT = "mmr.cached_at"
LOCAL_TOKEN_SECONDS = 5.0
"""How long a process believes a whoami answer without asking Redis again. Logouts are
announced (`FORGOTTEN_CHANNEL`) and every process forgets at once; a lost announcement (pub/sub
is fire-and-forget) shows for at most this long."""
LOCAL_TOKEN_MAX_ENTRIES = 50_000
FORGOTTEN_CHANNEL = "tokens-forgotten"


class LocalTokenCache:
    """whoami answers (as cached in Redis) this process read lately, by cache key.

    It remembers only while it hears logouts from every process (`listen`); without pub/sub
    every check asks Redis, which knows of them at once."""

    def __init__(self, max_entries: int = LOCAL_TOKEN_MAX_ENTRIES) -> None:
        self._entries: ExpiringLru[str, dict[str, object]] = ExpiringLru(max_entries)
        self._listener = ChannelListener(FORGOTTEN_CHANNEL, self._heard, self._entries.clear)

    async def listen(self, coordinator: Coordinator) -> None:
        """Start hearing logouts unless already (cheap when listening)."""
        await self._listener.ensure_listening(coordinator)

    async def close(self) -> None:
        await self._listener.close()

    def _heard(self, message: bytes) -> None:
        try:
            forgotten = json.loads(message)
        except ValueError:
            return
        if not isinstance(forgotten, dict):
            return
        if isinstance(forgotten.get("key"), str):
            self.forget(forgotten["key"])
        elif isinstance(forgotten.get("hs"), str) and isinstance(forgotten.get("user"), str):
            self._forget_user(forgotten["hs"], forgotten["user"])

    def get(self, key: str) -> dict[str, object] | None:
        if not self._listener.listening:
            return None
        return self._entries.get(key)

    def put(self, key: str, body: dict[str, object], ttl: float) -> None:
        """Keep `body` for `LOCAL_TOKEN_SECONDS`, never past its cluster-wide entry's expiry."""
        if not self._listener.listening:
            return
        cached_at = body.get(CACHED_AT)
        lasts = LOCAL_TOKEN_SECONDS
        if isinstance(cached_at, float):  # wall-clock time of the cluster-wide entry
            lasts = min(lasts, cached_at + ttl - time.time())
        self._entries.put(key, body, lasts)

    def forget(self, key: str) -> None:
        self._entries.pop(key)

    def forget_user(self, hs: HomeserverConfig, user_id: str) -> None:
        self._forget_user(hs.name, user_id)

    def _forget_user(self, hs_name: str, user_id: str) -> None:
        prefix = f"whoami:{hs_name}:"
        for key, body in self._entries.items():
            if key.startswith(prefix) and body.get("user_id") == user_id:
                self._entries.pop(key)

    def clear(self) -> None:
        self._entries.clear()


def _cache_key(hs: HomeserverConfig, token_hash: str, as_user_id: str | None) -> str:
    return f"whoami:{hs.name}:{token_hash}:{as_user_id or ''}"


def _revoked_key(hs: HomeserverConfig, user_id: str) -> str:
    return f"whoami-revoked:{hs.name}:{user_id}"


async def _cached_whoami(
    coordinator: Coordinator, hs: HomeserverConfig, key: str, cached_after: float
) -> dict[str, object] | None:
    """A cached whoami answer, unless its user logged out everywhere after it was cached, or
    it is older than `cached_after`."""
    cached = await cache_get_quietly(coordinator, key)
    if cached is None:
        return None
    body: dict[str, object] = json.loads(cached)
    cached_at = body.get(CACHED_AT)
    when = cached_at if isinstance(cached_at, float) else 0.0
    if when < cached_after:
        return None
    revoked = await cache_get_quietly(coordinator, _revoked_key(hs, str(body.get("user_id"))))
    if revoked is not None and float(revoked) >= when:
        return None
    return body


async def forget_token(
    coordinator: Coordinator, local: LocalTokenCache, hs: HomeserverConfig, token: str,
    as_user_id: str | None,
) -> None:
    """After a logout: this token's cached whoami answers are gone for every process (`local`
    is this one's; the others hear it announced)."""
    token_hash = token_hash_of(token)
    for key in {_cache_key(hs, token_hash, None), _cache_key(hs, token_hash, as_user_id)}:
        local.forget(key)
        await _cache_delete(coordinator, key)
        await _announce_forgotten(coordinator, {"key": key})


async def forget_user_tokens(
    coordinator: Coordinator, local: LocalTokenCache, config: MmrConfig, hs: HomeserverConfig,
    user_id: str,
) -> None:
    """After a logout from every device: whatever was cached for the user before now is not
    believed any more, by any process (the mark outlives every entry it overrules)."""
    ttl = config.access_tokens.max_cache_time_seconds
    local.forget_user(hs, user_id)
    if ttl:
        await cache_set_quietly(coordinator, _revoked_key(hs, user_id), str(time.time()).encode(), ttl)
    await _announce_forgotten(coordinator, {"hs": hs.name, "user": user_id})


async def _announce_forgotten(coordinator: Coordinator, forgotten: dict[str, str]) -> None:
    """Tell every process's `LocalTokenCache`; never raises (their entries expire anyway)."""
    try:
        await coordinator.publish(FORGOTTEN_CHANNEL, json.dumps(forgotten).encode())
    except CoordinatorUnavailable as exc:
        log.warning("could not announce a logout to other processes: %r", exc)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


# The token cache only saves whoami calls: with Redis down, ask the homeserver every time
# rather than refuse every request.
async def cache_get_quietly(coordinator: Coordinator, key: str) -> bytes | None:
    try:
        return await coordinator.cache_get(key)
    except CoordinatorUnavailable as exc:
        log.warning("token cache unavailable, asking the homeserver: %r", exc)
        return None


async def _cache_delete(coordinator: Coordinator, key: str) -> None:
    try:
        await coordinator.cache_delete(key)
    except CoordinatorUnavailable as exc:
        log.warning("token cache unavailable, not deleting %s: %r", key, exc)


async def cache_set_quietly(coordinator: Coordinator, key: str, value: bytes, ttl: float) -> None:
    try:
        await coordinator.cache_set(key, value, ttl)
    except CoordinatorUnavailable as exc:
        log.warning("token cache unavailable, not caching: %r", exc)
