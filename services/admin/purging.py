"""The `purge_media` task: forget every selected media item, batch by batch, resumably.

State: the cursor, the batch being forgotten (`pending`) and what was forgotten so far. Before a
batch is forgotten it is checkpointed as pending, so a run killed in the middle forgets the
pending items again on resume (forgetting is idempotent, and an item gone already counts as
forgotten), and no item is missed or counted twice.
"""

from __future__ import annotations

from typing import Any

from services.admin.selection import count, exhausted, next_batch, selector_from_json
from shared.media.purge import forget_media
from shared.tasks.registry import TaskContext, task

PURGE_TASK = "purge_media"


@task(PURGE_TASK)
async def purge_media_task(ctx: TaskContext) -> dict[str, Any]:
    rt = ctx.runtime
    selector = selector_from_json(ctx.params["selector"])
    state: dict[str, Any] = ctx.state or {
        "cursor": None, "pending": [], "affected": [], "done": 0, "total": await count(rt, selector),
        "finished": False,
    }
    while True:
        for origin, media_id in state["pending"]:
            if await forget_media(rt, origin, media_id):
                state["affected"].append(f"mxc://{origin}/{media_id}")
            state["done"] += 1
        state["pending"] = []
        if state["finished"]:
            break
        records, cursor = await next_batch(rt, selector, state["cursor"])
        state["cursor"] = cursor
        state["pending"] = [[r.origin, r.media_id] for r in records]
        state["finished"] = exhausted(selector, records, cursor)
        state["total"] = max(state["total"], state["done"] + len(records))
        await ctx.checkpoint(state, state["done"], state["total"])
    await ctx.checkpoint(state, state["done"], state["total"])
    return {"purged": True, "affected": state["affected"], "total_removed": len(state["affected"])}
