"""`mmr admin datastores|transfer|export|import`: datastores and archives from the command line.

Registered on `mmr.admin_cli.admin_app` (same `--url`, `--token`, `--json`). `export` follows the
task, then downloads every part into a folder; `import` sends a folder of parts (as written by
`export`, or by matrix-media-repo's tools), then follows the import to its end. Bars show task
progress and bytes moved; failures exit non-zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from mmr.admin_cli import ADMIN, Api, BeforeOpt, _api, _before, admin_app, err, fail, follow, show

CHUNK_BYTES = 1024 * 1024
_PART_NUMBER = re.compile(r"export-part-(\d+)\.tgz$")


def _bytes_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    console=err, disable=not err.is_terminal)


def _finished(api: Api, task_id: int) -> dict[str, Any]:
    status = follow(api, task_id)
    if status["error_message"]:
        if api.as_json:
            show(api, status)
        fail(f"task {task_id} failed: {status['error_message']}")
    return status


@admin_app.command("datastores")
def datastores(
    ctx: typer.Context,
    datastore_id: Annotated[str | None, typer.Argument(help="Show this one's size estimate")] = None,
    before_ts: BeforeOpt = None,
) -> None:
    """The configured datastores, or one datastore's size estimate (objects used before --before-ts)."""
    api = _api(ctx)
    if datastore_id is not None:
        path = f"{ADMIN}/datastores/{quote(datastore_id, safe='')}/size_estimate"
        show(api, api.call("GET", path, params=_before(before_ts))[1])
        return
    listed = api.call("GET", f"{ADMIN}/datastores")[1]
    if api.as_json:
        show(api, listed)
        return
    table = Table("id", "type", "uri")
    for store_id, info in listed.items():
        table.add_row(store_id, info["type"], info["uri"])
    Console().print(table)


@admin_app.command("transfer")
def transfer(ctx: typer.Context, source: str, target: str, before_ts: BeforeOpt = None) -> None:
    """Move the objects of datastore SOURCE (used before --before-ts, default now) to TARGET."""
    api = _api(ctx)
    path = f"{ADMIN}/datastores/{quote(source, safe='')}/transfer_to/{quote(target, safe='')}"
    started = api.call("POST", path, params=_before(before_ts))[1]
    status = _finished(api, int(started["task_id"]))
    show(api, {**(status.get("result") or {}), "task_id": started["task_id"],
               "total_bytes": started["total_bytes"]})


@admin_app.command("export")
def export(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Option("--to", help="Folder the parts are downloaded into")],
    user: Annotated[str | None, typer.Option("--user", help="Export this user's media")] = None,
    server: Annotated[str | None, typer.Option("--server", help="Export this server's media")] = None,
    s3_urls: Annotated[bool, typer.Option("--s3-urls/--no-s3-urls", help="Record S3 URLs")] = True,
) -> None:
    """Export a user's or a server's media and download the parts into --to."""
    api = _api(ctx)
    if (user is None) == (server is None):
        fail("give exactly one of --user or --server")
    entity = f"user/{quote(user or '', safe='')}" if user else f"server/{quote(server or '', safe='')}"
    started = api.call("POST", f"{ADMIN}/{entity}/export", params={"s3_urls": str(s3_urls).lower()})[1]
    export_id, task_id = started["export_id"], int(started["task_id"])
    _finished(api, task_id)
    meta = api.call("GET", f"{ADMIN}/export/{export_id}/metadata")[1]
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(int(p["size"]) for p in meta["parts"])
    with _bytes_bar() as bar, api.client() as http:
        progress = bar.add_task(f"export {export_id}", total=total)
        for part in meta["parts"]:
            _download(http, f"{ADMIN}/export/{export_id}/part/{part['index']}", folder / part["name"],
                      lambda n: bar.advance(progress, n))
    show(api, {"export_id": export_id, "task_id": task_id, "folder": str(folder),
               "parts": [p["name"] for p in meta["parts"]]})


def _download(http: httpx.Client, path: str, dest: Path, advance: Any) -> None:
    temp = dest.with_name(dest.name + ".partial")
    try:
        with http.stream("GET", path) as answer:
            if answer.status_code != 200:
                fail(f"GET {path}: {answer.status_code}")
            with open(temp, "wb") as out:
                for chunk in answer.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    advance(len(chunk))
        temp.replace(dest)
    finally:
        temp.unlink(missing_ok=True)


def part_order(folder: Path) -> list[Path]:
    """The `.tgz` files of a folder: `export-part-N` by N, then anything else, the manifest last."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(".tgz")]

    def key(path: Path) -> tuple[int, int, str]:
        match = _PART_NUMBER.search(path.name)
        if match:
            return (0, int(match.group(1)), path.name)
        return (2 if path.name == "export-manifest.tgz" else 1, 0, path.name)

    return sorted(files, key=key)


def _chunks(path: Path, advance: Any) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            advance(len(chunk))
            yield chunk


@admin_app.command("import")
def import_(ctx: typer.Context,
            folder: Annotated[Path, typer.Argument(help="A folder of .tgz parts")]) -> None:
    """Import an archive: send every part of FOLDER, close, follow the import to its end."""
    api = _api(ctx)
    parts = part_order(folder) if folder.is_dir() else []
    if not parts:
        fail(f"no .tgz parts in {folder}")
    with _bytes_bar() as bar:
        progress = bar.add_task(f"import {folder.name}", total=sum(p.stat().st_size for p in parts))

        def advance(n: int) -> None:
            bar.advance(progress, n)

        started = api.call("POST", f"{ADMIN}/import", content=_chunks(parts[0], advance))[1]
        import_id, task_id = started["import_id"], int(started["task_id"])
        for path in parts[1:]:
            with api.client() as http:
                answer = http.post(f"{ADMIN}/import/{import_id}/part", content=_chunks(path, advance))
            if answer.status_code == 404:
                break  # every item of the manifest is in: the import ended by itself
            if answer.status_code != 200:
                fail(f"sending {path.name}: {answer.status_code} {answer.text[:200]}")
    with api.client() as http:
        http.post(f"{ADMIN}/import/{import_id}/close")  # 404 once it ended by itself
    status = _finished(api, task_id)
    result = status.get("result") or {}
    show(api, {**result, "import_id": import_id, "task_id": task_id})
    if result.get("missing"):
        fail(f"{len(result['missing'])} items of the manifest were in no part")
