"""Console sessions: a random session ID in an HttpOnly, SameSite=Strict cookie, the admin's
token and the session's CSRF token kept server-side (the coordinator's cache: Redis in a
cluster), so a token never reaches a URL, a page or the browser's script.

Every request re-checks the token (token and admin answers are cached like the API's), so a
revoked token or a demoted admin loses the console at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from shared.runtime import Runtime
from shared.web.ratelimit import trusts_peer

COOKIE = "mmr_console"
SIGNIN_COOKIE = "mmr_console_signin"  # the sign-in form's CSRF token (double submit)
SESSION_SECONDS = 12 * 3600
SIGNIN_SECONDS = 3600
COOKIE_PATH = "/_matrix/media/unstable/admin/console/"


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str
    token: str
    csrf: str


def _key(session_id: str) -> str:
    # Hashed: whoever reads the cache learns no cookie that would open a session.
    return "console-session:" + hashlib.sha256(session_id.encode()).hexdigest()


async def create_session(rt: Runtime, token: str) -> ConsoleSession:
    session = ConsoleSession(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32))
    value = json.dumps({"token": session.token, "csrf": session.csrf}).encode()
    await rt.coordinator.cache_set(_key(session.session_id), value, SESSION_SECONDS)
    return session


async def load_session(rt: Runtime, request: Request) -> ConsoleSession | None:
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    raw = await rt.coordinator.cache_get(_key(session_id))
    if raw is None:
        return None
    data = json.loads(raw)
    return ConsoleSession(session_id, str(data["token"]), str(data["csrf"]))


async def end_session(rt: Runtime, session: ConsoleSession) -> None:
    await rt.coordinator.cache_delete(_key(session.session_id))


def came_over_https(request: Request, rt: Runtime) -> bool:
    """HTTPS to us, or to the operator's proxy in front of us (its X-Forwarded-Proto)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    if not trusts_peer(peer, rt.config.repo):
        return False
    proto = request.headers.get("x-forwarded-proto", "")
    return proto.split(",")[0].strip().lower() == "https"


def set_cookie(response: Response, request: Request, rt: Runtime, name: str, value: str,
               max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=came_over_https(request, rt))


def clear_cookie(response: Response, request: Request, rt: Runtime, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=came_over_https(request, rt))


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def same_origin(request: Request) -> bool:
    """A browser's Origin (when it sent one) names this host: a second line behind the token."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    hosts = {request.headers.get("host", "")}
    hosts |= {h.strip() for h in request.headers.get("x-forwarded-host", "").split(",")}
    return origin.split("://", 1)[-1].rstrip("/") in hosts - {""}
