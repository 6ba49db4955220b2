"""`mmr admin ...`: the common admin operations over the admin API, for operators and scripts.

Talks to a running mmr (`--url`/`MMR_ADMIN_URL`) with an admin's token (`--token`/
`MMR_ADMIN_TOKEN`, e.g. the shared secret). Long operations (purges and quarantines of many
items) start a task and follow it with a live progress bar; `--json` prints the answer instead,
for scripts. Any failure (refused, invalid, a failed task) exits non-zero with the error.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ADMIN = "/_matrix/media/unstable/admin"
POLL_SECONDS = 0.5

admin_app = typer.Typer(help="Admin operations on a running mmr (purge, quarantine, pin, usage, tasks)",
                        no_args_is_help=True)
purge_app = typer.Typer(help="Purge media (pinned media is always kept)", no_args_is_help=True)
quarantine_app = typer.Typer(help="Quarantine media (every copy of the same bytes)", no_args_is_help=True)
admin_app.add_typer(purge_app, name="purge")
admin_app.add_typer(quarantine_app, name="quarantine")

err = Console(stderr=True)


@dataclass
class Api:
    url: str
    token: str
    server_name: str | None
    as_json: bool

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.server_name:
            headers["Host"] = self.server_name
        return httpx.Client(base_url=self.url.rstrip("/"), headers=headers, timeout=120)

    def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        try:
            with self.client() as http:
                response = http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.url}: {exc}")
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:200]}
        if response.status_code >= 400:
            what = body.get("errcode", "") if isinstance(body, dict) else ""
            detail = body.get("error", "") if isinstance(body, dict) else str(body)
            fail(f"{method} {path}: {response.status_code} {what} {detail}".strip())
        return response.status_code, body


def fail(message: str) -> Any:
    err.print(f"[red]mmr admin:[/red] {message}", highlight=False)
    raise typer.Exit(1)


UrlOpt = Annotated[str, typer.Option("--url", envvar="MMR_ADMIN_URL", help="Base URL of mmr")]
TokenOpt = Annotated[str, typer.Option("--token", envvar="MMR_ADMIN_TOKEN", help="An admin's token")]
ServerOpt = Annotated[str | None, typer.Option(
    "--server-name", envvar="MMR_ADMIN_SERVER_NAME",
    help="Homeserver to act as (sent as Host; default: the URL's host)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON answer (no progress bar)")]


@admin_app.callback()
def _connect(ctx: typer.Context, url: UrlOpt = "http://127.0.0.1:8000", token: TokenOpt = "",
             server_name: ServerOpt = None, as_json: JsonOpt = False) -> None:
    if not token:
        fail("an admin token is needed: --token or MMR_ADMIN_TOKEN")
    ctx.obj = Api(url, token, server_name, as_json)


def _api(ctx: typer.Context) -> Api:
    api: Api = ctx.obj
    return api


def show(api: Api, body: Any) -> None:
    if api.as_json:
        typer.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    if isinstance(body, dict):
        for key, value in body.items():
            text = "\n  ".join(value) if isinstance(value, list) and value else json.dumps(value)
            typer.echo(f"{key}: {text}")
    else:
        typer.echo(json.dumps(body, indent=2))


def follow(api: Api, task_id: int) -> dict[str, Any]:
    """Poll the task until it ends, with a live progress bar unless printing JSON."""
    path = f"{ADMIN}/tasks/{task_id}"
    if api.as_json or not sys.stderr.isatty():
        while not (status := api.call("GET", path)[1])["is_finished"]:
            time.sleep(POLL_SECONDS)
        return dict(status)
    columns = (TextColumn("task {task.fields[task_id]} {task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task("starting", total=None, task_id=task_id)
        while True:
            status = api.call("GET", path)[1]
            progress.update(bar, description=status["task_name"], completed=status["done"],
                            total=status["total"])
            if status["is_finished"]:
                return dict(status)
            time.sleep(POLL_SECONDS)


def run_long(api: Api, method: str, path: str, params: dict[str, Any] | None = None) -> None:
    """Start a task-backed operation, follow it, print its result; exit 1 if it failed."""
    _, started = api.call(method, path, params={**(params or {}), "async": "true"})
    task_id = int(started["task_id"])
    status = follow(api, task_id)
    if status["error_message"]:
        if api.as_json:
            show(api, status)
        fail(f"task {task_id} failed: {status['error_message']}")
    show(api, {**(status.get("result") or {}), "task_id": task_id})


def _mxc(mxc: str) -> str:
    """`mxc://server/id` (or `server/id`) as the `server/id` of an admin path."""
    rest = mxc[len("mxc://"):] if mxc.startswith("mxc://") else mxc
    server, _, media_id = rest.partition("/")
    if not server or not media_id or "/" in media_id:
        fail(f"not an mxc URI: {mxc!r}")
    return f"{quote(server, safe='')}/{quote(media_id, safe='')}"


BeforeOpt = Annotated[int | None, typer.Option("--before-ts", help="ms since the epoch")]


def _before(before_ts: int | None) -> dict[str, Any]:
    return {"before_ts": before_ts} if before_ts is not None else {}


@purge_app.command("remote")
def purge_remote(ctx: typer.Context, before_ts: Annotated[int, typer.Option("--before-ts")]) -> None:
    """Cached remote media fetched before --before-ts (quarantined media stays)."""
    run_long(_api(ctx), "POST", f"{ADMIN}/purge/remote", {"before_ts": before_ts})


@purge_app.command("old")
def purge_old(ctx: typer.Context, before_ts: BeforeOpt = None,
              include_local: Annotated[bool, typer.Option("--include-local")] = False) -> None:
    """Media not used since --before-ts (remote only unless --include-local)."""
    params = {**_before(before_ts), "include_local": str(include_local).lower()}
    run_long(_api(ctx), "POST", f"{ADMIN}/purge/old", params)


@purge_app.command("quarantined")
def purge_quarantined(ctx: typer.Context) -> None:
    run_long(_api(ctx), "POST", f"{ADMIN}/purge/quarantined")


@purge_app.command("user")
def purge_user(ctx: typer.Context, user_id: str, before_ts: BeforeOpt = None) -> None:
    run_long(_api(ctx), "POST", f"{ADMIN}/purge/user/{quote(user_id, safe='')}", _before(before_ts))


@purge_app.command("room")
def purge_room(ctx: typer.Context, room_id: str, before_ts: BeforeOpt = None) -> None:
    run_long(_api(ctx), "POST", f"{ADMIN}/purge/room/{quote(room_id, safe='')}", _before(before_ts))


@purge_app.command("server")
def purge_server(ctx: typer.Context, server_name: str, before_ts: BeforeOpt = None) -> None:
    run_long(_api(ctx), "POST", f"{ADMIN}/purge/server/{quote(server_name, safe='')}",
             _before(before_ts))


@purge_app.command("media")
def purge_media(ctx: typer.Context, mxc: str) -> None:
    """One item (mxc://server/id)."""
    api = _api(ctx)
    show(api, api.call("POST", f"{ADMIN}/purge/{_mxc(mxc)}")[1])


ReleaseOpt = Annotated[bool, typer.Option("--release", help="Unquarantine instead")]


def _verb(release: bool) -> str:
    return "unquarantine" if release else "quarantine"


@quarantine_app.command("media")
def quarantine_media(ctx: typer.Context, mxc: str, release: ReleaseOpt = False) -> None:
    api = _api(ctx)
    show(api, api.call("POST", f"{ADMIN}/{_verb(release)}/{_mxc(mxc)}")[1])


@quarantine_app.command("room")
def quarantine_room(ctx: typer.Context, room_id: str, release: ReleaseOpt = False) -> None:
    run_long(_api(ctx), "POST", f"{ADMIN}/{_verb(release)}/room/{quote(room_id, safe='')}")


@quarantine_app.command("user")
def quarantine_user(ctx: typer.Context, user_id: str, release: ReleaseOpt = False) -> None:
    run_long(_api(ctx), "POST", f"{ADMIN}/{_verb(release)}/user/{quote(user_id, safe='')}")


@quarantine_app.command("server")
def quarantine_server(ctx: typer.Context, server_name: str, release: ReleaseOpt = False) -> None:
    run_long(_api(ctx), "POST", f"{ADMIN}/{_verb(release)}/server/{quote(server_name, safe='')}")


@admin_app.command("pin")
def pin(ctx: typer.Context, mxc: str,
        unpin: Annotated[bool, typer.Option("--unpin", help="Back to purpose none")] = False) -> None:
    """Pin media so that no purge ever removes it (or --unpin)."""
    api = _api(ctx)
    body = {"purpose": "none" if unpin else "pinned"}
    show(api, api.call("POST", f"{ADMIN}/media/{_mxc(mxc)}/attributes", json=body)[1])


@admin_app.command("usage")
def usage(ctx: typer.Context, server_name: str,
          users: Annotated[bool, typer.Option("--users", help="Per-user statistics")] = False) -> None:
    """A server's bytes and counts, or (--users) its uploaders' statistics."""
    api = _api(ctx)
    if not users:
        show(api, api.call("GET", f"{ADMIN}/usage/{quote(server_name, safe='')}")[1])
        return
    path = f"{ADMIN}/usage/{quote(server_name, safe='')}/users-stats"
    rows: list[dict[str, Any]] = []
    start: int | None = 0
    while start is not None:
        page = api.call("GET", path, params={"from": start, "limit": 100})[1]
        rows += page["users"]
        start = page.get("next_token")
    if api.as_json:
        show(api, rows)
        return
    table = Table("user", "media", "bytes")
    for row in rows:
        table.add_row(row["user_id"], str(row["media_count"]), str(row["media_length"]))
    Console().print(table)


@admin_app.command("tasks")
def tasks(ctx: typer.Context,
          unfinished: Annotated[bool, typer.Option("--unfinished")] = False) -> None:
    """Background tasks (all, or only unfinished ones)."""
    api = _api(ctx)
    listed = api.call("GET", f"{ADMIN}/tasks/{'unfinished' if unfinished else 'all'}")[1]
    if api.as_json:
        show(api, listed)
        return
    table = Table("id", "name", "progress", "finished", "error")
    for t in listed:
        progress = f"{t['done']}/{t['total']}" if t["total"] is not None else str(t["done"])
        table.add_row(str(t["task_id"]), t["task_name"], progress, "yes" if t["is_finished"] else "no",
                      t["error_message"])
    Console().print(table)


@admin_app.command("task")
def task(ctx: typer.Context, task_id: int,
         wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end")] = False) -> None:
    """One task's status; --wait follows it with a progress bar (exit 1 if it fails)."""
    api = _api(ctx)
    status = follow(api, task_id) if wait else api.call("GET", f"{ADMIN}/tasks/{task_id}")[1]
    show(api, status)
    if status["error_message"]:
        raise typer.Exit(1)


@admin_app.command("audit")
def audit(ctx: typer.Context, limit: Annotated[int, typer.Option("--limit")] = 50) -> None:
    """The newest entries of the audit log."""
    api = _api(ctx)
    page = api.call("GET", f"{ADMIN}/audit", params={"limit": limit})[1]
    if api.as_json:
        show(api, page)
        return
    table = Table("when (ms)", "who", "call", "status", "outcome")
    for e in page["entries"]:
        table.add_row(str(e["ts"]), e["user_id"] or "", f"{e['method']} {e['path']}", str(e["status"]),
                      e["outcome"])
    Console().print(table)
