"""The upload service: `POST /upload`, `/config` (and async uploads)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from services.upload.routes import router
from shared.config import MmrConfig
from shared.runtime import Runtime
from shared.web.app import make_app
from shared.web.schema_only import RAW_BODY, SchemaOnlyRouter, document_schema_only, not_routed

SERVICE = "upload"
ROUTERS: list[APIRouter] = [router]

# The lean upload routes (services.upload.routes) as the OpenAPI document shows them: the query
# parameter they read by hand and the raw body they stream.
DECLARED = SchemaOnlyRouter()


def upload(filename: str | None = None) -> None:
    """`POST /_matrix/media/{r0,v1,v3}/upload`."""
    not_routed()


def upload_async(server_name: str, media_id: str, filename: str | None = None) -> None:
    """`PUT /_matrix/media/{r0,v3}/upload/{serverName}/{mediaId}`."""
    not_routed()


for _version in ("r0", "v1", "v3"):
    DECLARED.add_api_route(f"/_matrix/media/{_version}/upload", upload, methods=["POST"],
                           openapi_extra=RAW_BODY)
for _version in ("r0", "v3"):
    DECLARED.add_api_route(f"/_matrix/media/{_version}/upload/{{server_name}}/{{media_id}}",
                           upload_async, methods=["PUT"], openapi_extra=RAW_BODY)


def create_app(
    config: MmrConfig | None = None, machine_id: int = 1, runtime: Runtime | None = None
) -> FastAPI:
    app = make_app(SERVICE, ROUTERS, config=config, machine_id=machine_id, runtime=runtime)
    document_schema_only(app, [DECLARED])
    return app
