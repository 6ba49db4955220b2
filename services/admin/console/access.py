"""Who may use the console: a signed-in admin (the session's token checked on every request
as the admin API checks a header's), and a valid CSRF token on every form that changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData

from services.admin.console.session import (
    ConsoleSession,
    csrf_matches,
    end_session,
    load_session,
    same_origin,
)
from shared.auth.admin import AdminCaller, caller_for_token
from shared.matrix.errors import Forbidden, MatrixError
from shared.web.deps import HomeserverDep, RuntimeDep


class SignInNeeded(MatrixError):
    """No session (or its token stopped working): the console answers with its sign-in page."""

    def __init__(self) -> None:
        super().__init__(401, "M_MISSING_TOKEN", "Sign in to the console")


@dataclass(frozen=True)
class ConsoleUser:
    caller: AdminCaller
    session: ConsoleSession

    @property
    def csrf(self) -> str:
        return self.session.csrf


async def console_user(request: Request, rt: RuntimeDep, hs: HomeserverDep) -> ConsoleUser:
    session = await load_session(rt, request)
    if session is None:
        raise SignInNeeded()
    try:
        caller = await caller_for_token(request, rt, hs, session.token)
    except MatrixError as exc:
        if exc.status != 401:
            raise
        await end_session(rt, session)
        raise SignInNeeded() from exc
    user = ConsoleUser(caller, session)
    request.state.console_user = user  # for the error page's navigation
    if not caller.is_admin:
        raise Forbidden("Only administrators may use the console")
    return user


ConsoleUserDep = Annotated[ConsoleUser, Depends(console_user)]


async def console_global_admin(user: ConsoleUserDep) -> ConsoleUser:
    if not user.caller.is_global_admin:
        raise Forbidden("Only media repository administrators may see this page")
    return user


GlobalConsoleDep = Annotated[ConsoleUser, Depends(console_global_admin)]


async def checked_form(request: Request, user: ConsoleUserDep) -> FormData:
    """The posted form, once its CSRF token is the session's and the browser's Origin is ours."""
    form = await request.form()
    given = form.get("csrf")
    if not same_origin(request) or not csrf_matches(user.csrf, given if isinstance(given, str) else None):
        raise Forbidden("This form is out of date or was not sent from the console: reload the page")
    return form


FormDep = Annotated[FormData, Depends(checked_form)]
