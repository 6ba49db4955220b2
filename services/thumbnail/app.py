"""The thumbnail service: its own pool of processes, because image work is CPU and memory heavy."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from services.thumbnail.lifecycle import start_thumbnailing
from services.thumbnail.routes import router
from shared.config import MmrConfig
from shared.runtime import Runtime
from shared.web.app import StartHook, make_app

SERVICE = "thumbnail"
ROUTERS: list[APIRouter] = [router]
# The worker pool (workers start on first use) and the pre-generation consumer.
START_HOOKS: list[StartHook] = [start_thumbnailing]


def create_app(
    config: MmrConfig | None = None, machine_id: int = 1, runtime: Runtime | None = None
) -> FastAPI:
    return make_app(SERVICE, ROUTERS, config=config, machine_id=machine_id, runtime=runtime,
                    start_hooks=START_HOOKS)
