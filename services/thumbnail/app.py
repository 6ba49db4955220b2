"""The thumbnail service: its own pool of processes, because image work is CPU and memory heavy."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Header, Query

from services.thumbnail.lifecycle import start_thumbnailing
from services.thumbnail.routes import MAX_INTEGER, UNSTABLE_ANIMATED, router
from shared.config import MmrConfig
from shared.runtime import Runtime
from shared.web.app import StartHook, make_app
from shared.web.schema_only import SchemaOnlyRouter, document_schema_only, not_routed

SERVICE = "thumbnail"
ROUTERS: list[APIRouter] = [router]
# The worker pool (workers start on first use) and the pre-generation consumer.
START_HOOKS: list[StartHook] = [start_thumbnailing]

# The lean thumbnail routes (services.thumbnail.routes) as the OpenAPI document shows them: the
# parameters they read by hand, with the bounds they enforce.
DECLARED = SchemaOnlyRouter()
Size = Annotated[int, Query(ge=1, le=MAX_INTEGER)]
Timeout = Annotated[int | None, Query(ge=0, le=MAX_INTEGER)]
UnstableAnimated = Annotated[bool | None, Query(alias=UNSTABLE_ANIMATED)]
OptionalHeader = Annotated[str | None, Header()]


def thumbnail(
    server_name: str, media_id: str, width: Size, height: Size,
    method: Literal["crop", "scale"] = "scale", animated: bool | None = None,
    unstable_animated: UnstableAnimated = None, timeout_ms: Timeout = None,
    if_none_match: OptionalHeader = None,
) -> None:
    """`GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`."""
    del unstable_animated  # documented under its MSC2705 name, never read under this one
    not_routed()


def legacy_thumbnail(
    server_name: str, media_id: str, width: Size, height: Size,
    method: Literal["crop", "scale"] = "scale", animated: bool | None = None,
    unstable_animated: UnstableAnimated = None, timeout_ms: Timeout = None,
    allow_remote: bool = True, allow_redirect: bool = False,
    if_none_match: OptionalHeader = None,
) -> None:
    """Deprecated `GET /_matrix/media/{r0,v1,v3}/thumbnail/{serverName}/{mediaId}`."""
    del unstable_animated
    not_routed()


DECLARED.add_api_route("/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}", thumbnail,
                       methods=["GET"])
for _version in ("r0", "v1", "v3"):
    DECLARED.add_api_route(f"/_matrix/media/{_version}/thumbnail/{{server_name}}/{{media_id}}",
                           legacy_thumbnail, methods=["GET"])


def create_app(
    config: MmrConfig | None = None, machine_id: int = 1, runtime: Runtime | None = None
) -> FastAPI:
    app = make_app(SERVICE, ROUTERS, config=config, machine_id=machine_id, runtime=runtime,
                   start_hooks=START_HOOKS)
    document_schema_only(app, [DECLARED])
    return app
