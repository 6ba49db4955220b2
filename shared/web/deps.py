"""FastAPI dependencies: the runtime, a database session, the homeserver and the user.

Routes declare what they need with these aliases; tests hand in real instances by building the
app around a `Runtime` they made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth.tokens import authenticate, extract_token
from shared.auth.users import UserInfo
from shared.config import HomeserverConfig
from shared.runtime import Runtime
from shared.web.middleware import homeserver_var


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
# thread pool, which would cost every request a thread hop for a dictionary lookup.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def request_host(request: Request, runtime: Runtime) -> str:
    """The Host the client asked for (X-Forwarded-Host when the operator trusts it)."""
    if runtime.config.repo.use_forwarded_host:
        forwarded = request.headers.get("x-forwarded-host")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.headers.get("host", "")


async def get_homeserver(request: Request, runtime: RuntimeDep) -> HomeserverConfig:
    homeserver = runtime.homeserver_for_host(request_host(request, runtime))
    homeserver_var.set(homeserver.name)
    return homeserver


HomeserverDep = Annotated[HomeserverConfig, Depends(get_homeserver)]


async def get_user(request: Request, runtime: RuntimeDep, hs: HomeserverDep) -> UserInfo:
    token = extract_token(
        request.headers, request.query_params, runtime.config.repo.accept_query_access_token
    )
    return await authenticate(
        runtime.config.for_domain(hs.name),
        runtime.coordinator,
        runtime.local_tokens,
        runtime.http,
        hs,
        token,
        as_user_id=request.query_params.get("user_id"),
        cached_after=runtime.token_cache_flushed_at,
    )


UserDep = Annotated[UserInfo, Depends(get_user)]
