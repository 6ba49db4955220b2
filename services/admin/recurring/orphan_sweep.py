"""Machine 0's recurring sweep of stored objects that no row references (after crashes).

A round runs at start and then every `orphanSweep.intervalHours`, as a resumable task: a round
killed mid-way resumes from its last checkpoint. The task's params may override the config
(`{"dry_run": true, "grace_seconds": 0}`), so an operator can ask what a sweep would remove.
"""

from __future__ import annotations

from typing import Any

from services.admin.recurring.schedule import Stop, start_recurring
from shared.media.orphans import sweep_orphans
from shared.runtime import Runtime
from shared.tasks.registry import TaskContext, task

ORPHAN_TASK = "recurring_sweep_orphaned_objects"


async def start_orphan_sweep(rt: Runtime) -> Stop | None:
    config = rt.config.orphan_sweep
    return await start_recurring(rt, ORPHAN_TASK, config.interval_hours * 3600, config.enabled)


@task(ORPHAN_TASK)
async def _orphan_round(ctx: TaskContext) -> dict[str, Any]:
    config = ctx.runtime.config.orphan_sweep
    dry_run = bool(ctx.params.get("dry_run", config.dry_run))
    grace_seconds = float(ctx.params.get("grace_seconds", config.grace_hours * 3600))

    async def save(state: dict[str, Any]) -> None:
        await ctx.checkpoint(state, int(state["examined"]))

    result = await sweep_orphans(ctx.runtime, grace_seconds, dry_run, ctx.state, save)
    return {**result, "dry_run": dry_run}
