"""OpenAPI declarations of the lean routes (`shared.web.lean`), which FastAPI leaves out.

FastAPI builds its OpenAPI document from its own routes only; the lean download and upload
routes are plain Starlette routes, so the document lacked them, and so did everything that
reads it (the schemathesis run of tests/compat/test_fuzz.py stopped fuzzing them). A service
declares each lean operation once more on a `SchemaOnlyRouter`: a FastAPI route whose endpoint's
signature says the parameters (as on any FastAPI route) and whose `openapi_extra` says a body the
endpoint does not read itself. That router is never included in the app: its routes appear in
the document and never answer a request, which the lean routes go on doing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from shared.web.lean import LeanRoute

RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
}
"""`openapi_extra` of an operation whose body is raw bytes, streamed by the lean endpoint."""


class SchemaOnlyRouter(APIRouter):
    """Declarations for the OpenAPI document only (`document_schema_only`); never include it."""


def not_routed() -> None:
    """The body of every declaration: it is documented, never called."""
    raise AssertionError("a schema-only declaration was routed a request")


def document_schema_only(app: FastAPI, declared: Sequence[SchemaOnlyRouter]) -> None:
    """Make `app.openapi()` list `declared`'s operations next to the app's own routes."""
    extra: list[BaseRoute] = [route for router in declared for route in router.routes]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                routes=[*app.routes, *extra],
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def undocumented_lean_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of each lean route that the app's OpenAPI document does not list."""
    paths = app.openapi().get("paths", {})
    lean = {(method, route.path) for route in app.routes if isinstance(route, LeanRoute)
            for method in route.methods or ()}
    return sorted((method, path) for method, path in lean
                  if method.lower() not in paths.get(path, {}))
