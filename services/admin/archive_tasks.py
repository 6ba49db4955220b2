"""The long archive operations as machine-0 tasks, named as in matrix-media-repo
(`tasks/schedule.go`): `storage_migration`, `export_data`, `import_data`.

Each resumes from what it recorded: the transfer from its checkpoint and its journal of
switched objects, the export from its persisted parts, the import from its stored parts and the
media already recorded (see the modules in `shared/archive/` and `shared/media/transfer.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from shared.archive.exporting import run_export
from shared.archive.importing import discard_parts, run_import
from shared.media.locks import BACKEND_ERRORS
from shared.media.transfer import TransferState, transfer_datastore
from shared.tasks.registry import TaskContext, task

TRANSFER = "storage_migration"
EXPORT = "export_data"
IMPORT = "import_data"
IMPORT_POLL_SECONDS = 1.0


def import_channel(import_id: str) -> str:
    """Where the HTTP side says "a part arrived" (or "closed") to the running import."""
    return f"import:{import_id}"


@task(TRANSFER)
async def storage_migration(ctx: TaskContext) -> dict[str, Any]:
    params = ctx.params

    async def checkpoint(state: TransferState) -> None:
        await ctx.checkpoint(state.to_json(), state.moved + state.failed, state.total)

    state = await transfer_datastore(
        ctx.runtime, task_key=f"task-{ctx.task_id}", source_id=params["source_datastore_id"],
        target_id=params["target_datastore_id"], before_ts=int(params["before_ts"]),
        state=TransferState.from_json(ctx.state), checkpoint=checkpoint,
    )
    return {"moved": state.moved, "failed": state.failed, "bytes_moved": state.bytes_moved}


@task(EXPORT)
async def export_data(ctx: TaskContext) -> dict[str, Any]:
    async def progress(done: int, total: int) -> None:
        await ctx.checkpoint({"exported": done}, done, total)

    outcome = await run_export(ctx.runtime, ctx.params["export_id"],
                               bool(ctx.params.get("include_s3_urls", True)), progress)
    return {"export_id": ctx.params["export_id"], "parts": outcome.parts, "media": outcome.media,
            "skipped": outcome.skipped}


@task(IMPORT)
async def import_data(ctx: TaskContext) -> dict[str, Any]:
    rt = ctx.runtime
    # MMR's parameter name for the import's ID.
    import_id = str(ctx.params["export_id"])

    async def progress(done: int, total: int) -> None:
        await ctx.checkpoint({"settled": done}, done, total)

    subscription = None
    with contextlib.suppress(*BACKEND_ERRORS):
        subscription = await rt.coordinator.subscribe(import_channel(import_id))

    async def wait_for_parts() -> None:
        if subscription is None:
            await asyncio.sleep(IMPORT_POLL_SECONDS)
            return
        try:
            await subscription.get(IMPORT_POLL_SECONDS)
        except BACKEND_ERRORS:
            await asyncio.sleep(IMPORT_POLL_SECONDS)

    try:
        outcome = await run_import(rt, import_id, progress, wait_for_parts)
    except asyncio.CancelledError:
        raise  # interrupted: the stored parts are what the resumed run reads
    except Exception:
        await discard_parts(rt, import_id)  # a bad archive fails the same way every time
        raise
    finally:
        if subscription is not None:
            await subscription.close()
    await discard_parts(rt, import_id)
    return {"import_id": import_id, "imported": outcome.imported,
            "already_present": outcome.already_present, "skipped": outcome.skipped,
            "missing": outcome.missing}
