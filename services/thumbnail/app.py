"""The thumbnail service."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from services.thumbnail.routes import router
from shared.config import MmrConfig
from shared.runtime import Runtime
from shared.web.app import make_app

SERVICE = "thumbnail"
ROUTERS: list[APIRouter] = [router]


def create_app(
    config: MmrConfig | None = None, machine_id: int = 1, runtime: Runtime | None = None
) -> FastAPI:
    return make_app(SERVICE, ROUTERS, config=config, machine_id=machine_id, runtime=runtime)
