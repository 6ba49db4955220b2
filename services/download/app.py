"""The download service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Header

from services.download.routes import router
from shared.config import MmrConfig
from shared.runtime import Runtime
from shared.web.app import make_app
from shared.web.schema_only import SchemaOnlyRouter, document_schema_only, not_routed

SERVICE = "download"
ROUTERS: list[APIRouter] = [router]

# The lean download routes (services.download.routes) as the OpenAPI document shows them: the
# parameters they read by hand, with the types they enforce.
DECLARED = SchemaOnlyRouter()
OptionalHeader = Annotated[str | None, Header()]


def download(
    server_name: str, media_id: str, timeout_ms: int | None = None,
    range: OptionalHeader = None, if_range: OptionalHeader = None,
    if_none_match: OptionalHeader = None,
) -> None:
    """`GET|HEAD /_matrix/client/v1/media/download/{serverName}/{mediaId}`."""
    not_routed()


def download_named(
    server_name: str, media_id: str, file_name: str, timeout_ms: int | None = None,
    range: OptionalHeader = None, if_range: OptionalHeader = None,
    if_none_match: OptionalHeader = None,
) -> None:
    """`GET|HEAD /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`."""
    not_routed()


def legacy_download(
    server_name: str, media_id: str, timeout_ms: int | None = None, allow_remote: bool = True,
    allow_redirect: bool = False, range: OptionalHeader = None, if_range: OptionalHeader = None,
    if_none_match: OptionalHeader = None,
) -> None:
    """Deprecated `GET|HEAD /_matrix/media/{r0,v1,v3}/download/{serverName}/{mediaId}`."""
    not_routed()


def legacy_download_named(
    server_name: str, media_id: str, file_name: str, timeout_ms: int | None = None,
    allow_remote: bool = True, allow_redirect: bool = False, range: OptionalHeader = None,
    if_range: OptionalHeader = None, if_none_match: OptionalHeader = None,
) -> None:
    """Deprecated `GET|HEAD /_matrix/media/{r0,v1,v3}/download/{serverName}/{mediaId}/{fileName}`."""
    not_routed()


_V1 = "/_matrix/client/v1/media/download/{server_name}/{media_id}"
_METHODS = ["GET", "HEAD"]
DECLARED.add_api_route(_V1, download, methods=_METHODS)
DECLARED.add_api_route(_V1 + "/{file_name}", download_named, methods=_METHODS)
for _version in ("r0", "v1", "v3"):
    _legacy = f"/_matrix/media/{_version}/download/{{server_name}}/{{media_id}}"
    DECLARED.add_api_route(_legacy, legacy_download, methods=_METHODS)
    DECLARED.add_api_route(_legacy + "/{file_name}", legacy_download_named, methods=_METHODS)


def create_app(
    config: MmrConfig | None = None, machine_id: int = 1, runtime: Runtime | None = None
) -> FastAPI:
    app = make_app(SERVICE, ROUTERS, config=config, machine_id=machine_id, runtime=runtime)
    document_schema_only(app, [DECLARED])
    return app
