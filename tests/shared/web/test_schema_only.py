"""Schema-only declarations: in the OpenAPI document, never in the way of the lean route."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from shared.web.lean import LeanRoute
from shared.web.schema_only import (
    RAW_BODY,
    SchemaOnlyRouter,
    document_schema_only,
    not_routed,
    undocumented_lean_routes,
)
from tests.infra.http_server import ServerThread

PATH = "/things/{media_id}"


async def lean_thing(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"lean {request.path_params['media_id']}")


def declared_thing(media_id: str, size: int | None = None) -> None:
    not_routed()


def _app(declared: bool) -> FastAPI:
    app = FastAPI(openapi_url=None)
    app.router.routes.append(LeanRoute(PATH, lean_thing, methods=["PUT"]))
    if declared:
        router = SchemaOnlyRouter()
        router.add_api_route(PATH, declared_thing, methods=["PUT"], openapi_extra=RAW_BODY)
        document_schema_only(app, [router])
    return app


def test_an_undeclared_lean_route_is_missing_from_the_document() -> None:
    app = _app(declared=False)
    assert PATH not in app.openapi()["paths"]
    assert undocumented_lean_routes(app) == [("PUT", PATH)]


def test_a_declared_lean_route_is_documented_with_its_parameters_and_body() -> None:
    app = _app(declared=True)
    operation = app.openapi()["paths"][PATH]["put"]
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [("media_id", "path"),
                                                                     ("size", "query")]
    assert "application/octet-stream" in operation["requestBody"]["content"]
    assert undocumented_lean_routes(app) == []


def test_the_declaration_never_answers_a_request() -> None:
    with ServerThread(_app(declared=True)) as server:
        response = httpx.put(server.url + "/things/a1", content=b"x")
        other = httpx.get(server.url + "/things/a1")
    assert (response.status_code, response.text) == (200, "lean a1")
    assert other.status_code == 405  # only the lean route is routed: PUT, nothing else
