"""Console HTTP routes under `/_matrix/media/unstable/admin/console/`: pages, charts, the
confirmation pages and the forms behind each button (audited like every admin call)."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse

from services.admin.audit import AuditedRoute
from services.admin.console import charts, pages
from services.admin.console.access import (
    ConsoleUserDep,
    FormDep,
    GlobalConsoleDep,
    SignInNeeded,
)
from services.admin.console.rendering import BASE, HERE, SECURITY_HEADERS, render
from services.admin.console.session import (
    COOKIE,
    SESSION_SECONDS,
    SIGNIN_COOKIE,
    SIGNIN_SECONDS,
    clear_cookie,
    create_session,
    csrf_matches,
    end_session,
    load_session,
    new_csrf,
    same_origin,
    set_cookie,
)
from shared.auth.admin import caller_for_token
from shared.matrix.errors import MatrixError, NotFound
from shared.runtime import Runtime
from shared.web.deps import HomeserverDep, RuntimeDep

CLUSTER_REFRESH_SECONDS = 5
TASKS_REFRESH_SECONDS = 2
STATIC = {"console.css": "text/css; charset=utf-8",
          "console.js": "text/javascript; charset=utf-8"}
# An SVG chart is loaded as an image (it runs nothing); its own <style> is all it may use.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def signin_page(request: Request, rt: Runtime, status: int = 200, error: str | None = None) -> Response:
    csrf = new_csrf()
    response = render(request, "signin.html", status=status, error=error, csrf=csrf, user=None)
    set_cookie(response, request, rt, SIGNIN_COOKIE, csrf, SIGNIN_SECONDS)
    return response


class ConsoleRoute(AuditedRoute):
    """Audited like every admin route; refusals and errors become pages, not JSON, and every
    answer carries the console's security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded:
                response = signin_page(request, request.app.state.runtime, status=401)
            except MatrixError as exc:
                response = render(request, "error.html", status=exc.status, message=exc.error,
                                  user=getattr(request.state, "console_user", None))
            except RequestValidationError:
                response = render(request, "error.html", status=400, message="Invalid form or query",
                                  user=getattr(request.state, "console_user", None))
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return console


router = APIRouter(prefix=BASE, route_class=ConsoleRoute)


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(BASE + path, status_code=303)


# -- signing in and out ------------------------------------------------------------------------


@router.get("/")
async def home(user: ConsoleUserDep) -> Response:
    return _see_other("/cluster" if user.caller.is_global_admin else "/usage")


@router.get("/signin")
async def signin_form(request: Request, rt: RuntimeDep) -> Response:
    if await load_session(rt, request) is not None:
        return _see_other("/")
    return signin_page(request, rt)


@router.post("/signin")
async def signin(request: Request, rt: RuntimeDep, hs: HomeserverDep) -> Response:
    form = await request.form()
    token, csrf = form.get("token"), form.get("csrf")
    if not same_origin(request) or not csrf_matches(request.cookies.get(SIGNIN_COOKIE),
                                                    csrf if isinstance(csrf, str) else None):
        return signin_page(request, rt, 403, "The sign-in form was out of date: try again")
    if not isinstance(token, str) or not token.strip():
        return signin_page(request, rt, 401, "Paste an access token or the shared secret")
    try:
        caller = await caller_for_token(request, rt, hs, token.strip())
    except MatrixError as exc:
        if exc.status != 401:
            raise
        return signin_page(request, rt, 401, "That token was not accepted")
    if not caller.is_admin:
        return signin_page(request, rt, 403, f"{caller.user_id} is not an administrator")
    session = await create_session(rt, token.strip())
    response = _see_other("/")
    set_cookie(response, request, rt, COOKIE, session.session_id, SESSION_SECONDS)
    clear_cookie(response, request, rt, SIGNIN_COOKIE)
    return response


@router.post("/signout")
async def signout(request: Request, rt: RuntimeDep, user: ConsoleUserDep, _form: FormDep) -> Response:
    await end_session(rt, user.session)
    response = _see_other("/signin")
    clear_cookie(response, request, rt, COOKIE)
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound("No such file")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "public, max-age=300"})


# -- Cluster -----------------------------------------------------------------------------------


@router.get("/cluster")
async def cluster(request: Request, rt: RuntimeDep, user: GlobalConsoleDep) -> Response:
    view = await pages.cluster_view(rt)
    return render(request, "cluster.html", user=user, view=view, now=time.time(),
                  refresh=CLUSTER_REFRESH_SECONDS, page="cluster")


# -- Tasks -------------------------------------------------------------------------------------


@router.get("/tasks")
async def tasks(request: Request, rt: RuntimeDep, user: GlobalConsoleDep) -> Response:
    rows = await pages.task_rows(rt)
    return render(request, "tasks.html", user=user, rows=rows, stores=pages.datastore_ids(rt),
                  refresh=TASKS_REFRESH_SECONDS, page="tasks", started=_task_id(request))


def _task_id(request: Request) -> int | None:
    started = request.query_params.get("started", "")
    return int(started) if started.isdigit() else None


@router.get("/tasks/confirm/purge-remote")
async def confirm_purge_remote(request: Request, rt: RuntimeDep, user: GlobalConsoleDep,
                               before: str = Query(...)) -> Response:
    before_ts = pages.parse_day(before)
    affected = await pages.remote_purge_count(rt, before_ts)
    return render(request, "confirm.html", user=user, page="tasks",
                  title="Purge remote media", action=f"{BASE}/tasks/purge-remote",
                  fields={"before": before}, button="Start the purge",
                  what=f"Forget every cached remote media item stored before {before} "
                       f"(except quarantined and pinned ones): {affected} item(s) now.")


@router.post("/tasks/purge-remote")
async def start_purge_remote(rt: RuntimeDep, user: GlobalConsoleDep, form: FormDep) -> Response:
    record = await pages.start_remote_purge(rt, user.caller, pages.parse_day(str(form.get("before"))))
    return _see_other(f"/tasks?started={record.id}")


@router.get("/tasks/confirm/transfer")
async def confirm_transfer(request: Request, rt: RuntimeDep, user: GlobalConsoleDep,
                           source: str = Query(...), target: str = Query(...),
                           before: str = Query(...)) -> Response:
    estimate = await pages.transfer_estimate(rt, source, pages.parse_day(before))
    return render(request, "confirm.html", user=user, page="tasks",
                  title="Datastore transfer", action=f"{BASE}/tasks/transfer",
                  fields={"source": source, "target": target, "before": before},
                  button="Start the transfer",
                  what=f"Move the objects of datastore {source} stored before {before} to "
                       f"datastore {target}: {estimate.total_hashes_affected} object(s), "
                       f"{estimate.total_bytes} bytes.")


@router.post("/tasks/transfer")
async def start_transfer(rt: RuntimeDep, user: GlobalConsoleDep, form: FormDep) -> Response:
    task_id = await pages.start_datastore_transfer(
        rt, user.caller, str(form.get("source")), str(form.get("target")),
        pages.parse_day(str(form.get("before"))))
    return _see_other(f"/tasks?started={task_id}")


# -- Usage -------------------------------------------------------------------------------------


@router.get("/usage")
async def usage(request: Request, rt: RuntimeDep, user: ConsoleUserDep,
                server: str | None = Query(None)) -> Response:
    chosen = pages.chosen_server(rt, user.caller, server)
    view = await pages.usage_view(rt, user.caller, chosen)
    return render(request, "usage.html", user=user, view=view, page="usage", refresh=None)


CHARTS = ("storage", "uploads", "users", "datastores")


@router.get("/usage/charts/{name}.svg")
async def usage_chart(name: str, rt: RuntimeDep, user: ConsoleUserDep,
                      server: str | None = Query(None)) -> Response:
    if name not in CHARTS:
        raise NotFound("No such chart")
    snapshot = await pages.usage_snapshot(rt, pages.chosen_server(rt, user.caller, server))
    if name == "storage":
        svg = charts.storage_over_time(snapshot.days)
    elif name == "uploads":
        svg = charts.uploads_per_day(pages.last_days(snapshot))
    elif name == "users":
        svg = charts.top_users(snapshot.top_users)
    else:
        svg = charts.datastore_split(snapshot.datastores)
    return Response(svg, media_type="image/svg+xml",
                    headers={"Content-Security-Policy": SVG_CSP, "Cache-Control": "private, max-age=60"})


# -- Media -------------------------------------------------------------------------------------


@router.get("/media")
async def media(request: Request, rt: RuntimeDep, user: ConsoleUserDep,
                q: str = Query("")) -> Response:
    lookup = await pages.look_up(rt, user.caller, q)
    done = request.query_params.get("done")
    return render(request, "media.html", user=user, lookup=lookup, page="media",
                  done=done if done in pages.ACTIONS else None)


@router.get("/media/confirm/{action}/{server_name}/{media_id}")
async def confirm_media_action(request: Request, rt: RuntimeDep, user: ConsoleUserDep, action: str,
                               server_name: str, media_id: str) -> Response:
    if action not in pages.ACTIONS:
        raise NotFound("No such action")
    item = await pages.media_item(rt, user.caller, server_name, media_id)
    mxc = item.details.record.mxc
    warning = {"purge": "The bytes and thumbnails are deleted (unless other media shares them); "
                        "this cannot be undone.",
               "quarantine": "Nobody can download it, nor anything with the same bytes.",
               }.get(action, "")
    return render(request, "confirm.html", user=user, page="media", title=f"{action.capitalize()} media",
                  action=f"{BASE}/media/{action}/{server_name}/{media_id}", fields={},
                  button=f"{action.capitalize()} {mxc}", what=f"{action.capitalize()} {mxc}? {warning}")


@router.post("/media/{action}/{server_name}/{media_id}")
async def media_action(action: str, server_name: str, media_id: str, rt: RuntimeDep,
                       user: ConsoleUserDep, _form: FormDep) -> Response:
    if action not in pages.ACTIONS:
        raise NotFound("No such action")
    await pages.act_on_media(rt, user.caller, action, server_name, media_id)
    # The page after says what was done from the action's name alone: no text in the URL.
    return _see_other("/media?" + urlencode({"q": f"mxc://{server_name}/{media_id}", "done": action}))
