"""Quarantine and release: every record with the same bytes changes (of the caller's homeserver
only, for a local admin, as matrix-media-repo does), and every process hears of it at once
through `announce_media_changed`. The `quarantine_media` task does it for a selection.
"""

from __future__ import annotations

from typing import Any

from services.admin.selection import count, exhausted, next_batch, selector_from_json
from shared.db.repositories.media_selection import set_quarantined_by_hash
from shared.media.changes import announce_media_changed
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, task

QUARANTINE_TASK = "quarantine_media"


async def set_quarantine_for_hash(
    rt: Runtime, sha256: str, quarantined: bool, origin: str | None
) -> int:
    """Flag every record with `sha256` (of `origin` only when given); how many changed."""
    async with rt.sessions() as session:
        changed = await set_quarantined_by_hash(session, sha256, quarantined, origin)
        await session.commit()
    for changed_origin, media_id in changed:
        await announce_media_changed(rt.coordinator, changed_origin, media_id)
    return len(changed)


@task(QUARANTINE_TASK)
async def quarantine_media_task(ctx: TaskContext) -> dict[str, Any]:
    """Params: `selector`, `quarantined` (bool), `origin` (limit to one origin's records)."""
    rt = ctx.runtime
    selector = selector_from_json(ctx.params["selector"])
    flag = bool(ctx.params["quarantined"])
    origin = ctx.params.get("origin")
    state: dict[str, Any] = ctx.state or {
        "cursor": None, "changed": 0, "done": 0, "total": await count(rt, selector),
    }
    seen_hashes: set[str] = set()
    while True:
        records, cursor = await next_batch(rt, selector, state["cursor"])
        for record in records:
            if record.sha256 not in seen_hashes:
                seen_hashes.add(record.sha256)
                state["changed"] += await set_quarantine_for_hash(rt, record.sha256, flag, origin)
            state["done"] += 1
        state["cursor"] = cursor
        state["total"] = max(state["total"], state["done"])
        await ctx.checkpoint(state, state["done"], state["total"])
        if exhausted(selector, records, cursor):
            break
    return {"num_quarantined": state["changed"]}
