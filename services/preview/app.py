"""The preview service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Query

from services.preview.routes import PREVIEW_PATHS, router
from shared.config import MmrConfig
from shared.runtime import Runtime
from shared.web.app import make_app
from shared.web.schema_only import SchemaOnlyRouter, document_schema_only, not_routed

SERVICE = "preview"
ROUTERS: list[APIRouter] = [router]

# The lean preview route (services.preview.routes) as the OpenAPI document shows it: the
# parameters it reads by hand.
DECLARED = SchemaOnlyRouter()


def preview_url(
    url: Annotated[str, Query()], ts: Annotated[int | None, Query()] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> None:
    """`GET .../preview_url?url=...&ts=...`: the OpenGraph keys of the page."""
    del accept_language  # documented here; the lean route reads the header itself
    not_routed()


for _path in PREVIEW_PATHS:
    DECLARED.add_api_route(_path, preview_url, methods=["GET"])


def create_app(
    config: MmrConfig | None = None, machine_id: int = 1, runtime: Runtime | None = None
) -> FastAPI:
    app = make_app(SERVICE, ROUTERS, config=config, machine_id=machine_id, runtime=runtime)
    document_schema_only(app, [DECLARED])
    return app
