"""The admin service."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from services.admin.cluster import router as cluster_router
from services.admin.console.routes import router as console_router
from services.admin.recurring.media_purge import start_remote_media_purge, start_thumbnail_purge
from services.admin.recurring.orphan_sweep import start_orphan_sweep
from services.admin.recurring.preview_purge import start_preview_purge
from services.admin.recurring.reservation_purge import start_reservation_purge
from services.admin.routes import router
from shared.config import MmrConfig
from shared.runtime import Runtime
from shared.tasks.runner import start_task_runner
from shared.web.app import StartHook, make_app

SERVICE = "admin"
ROUTERS: list[APIRouter] = [router, cluster_router, console_router]
# Machine-0 background tasks; each hook does nothing on other machines.
START_HOOKS: list[StartHook] = [
    start_task_runner, start_preview_purge, start_reservation_purge, start_remote_media_purge,
    start_thumbnail_purge, start_orphan_sweep,
]


def create_app(
    config: MmrConfig | None = None, machine_id: int = 0, runtime: Runtime | None = None
) -> FastAPI:
    return make_app(SERVICE, ROUTERS, config=config, machine_id=machine_id, runtime=runtime,
                    start_hooks=START_HOOKS)
