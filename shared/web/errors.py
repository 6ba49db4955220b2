"""Every error leaves as `{"errcode": ..., "error": ...}`; no traceback ever reaches a client."""

from __future__ import annotations

import logging

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.matrix.errors import MatrixError, ServiceUnavailable
from shared.metrics.record import dependency_error
from shared.storage.base import DatastoreUnavailable
from shared.web.json import FastJSONResponse as JSONResponse

log = logging.getLogger(__name__)


def matrix_error_response(exc: MatrixError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _describe_validation(exc: RequestValidationError) -> tuple[str, str]:
    """(errcode, message) naming the first bad parameter."""
    for err in exc.errors():
        name = str(err["loc"][-1]) if err.get("loc") else "request"
        if err.get("type") == "missing":
            return "M_MISSING_PARAM", f"Missing parameter: {name}"
        return "M_INVALID_PARAM", f"Invalid parameter {name}: {err.get('msg', 'invalid')}"
    return "M_INVALID_PARAM", "Invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MatrixError)
    async def _matrix(_: Request, exc: MatrixError) -> JSONResponse:
        return matrix_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return JSONResponse({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, 404)
        if exc.status_code == 405:
            return JSONResponse(
                {"errcode": "M_UNRECOGNIZED", "error": "Method not allowed for this endpoint"},
                405,
                headers=dict(exc.headers or {}),
            )
        return JSONResponse({"errcode": "M_UNKNOWN", "error": str(exc.detail)}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errcode, message = _describe_validation(exc)
        return JSONResponse({"errcode": errcode, "error": message}, 400)

    @app.exception_handler(DatastoreUnavailable)
    async def _storage_down(request: Request, exc: DatastoreUnavailable) -> JSONResponse:
        # The object store is down (an outage, not a bug): say so and when to retry.
        log.warning("datastore unavailable on %s %s: %s", request.method, request.url.path, exc)
        dependency_error(getattr(request.app.state, "runtime", None), exc)
        return matrix_error_response(ServiceUnavailable("The media store is unavailable right now; "
                                                        "try again shortly"))

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        dependency_error(getattr(request.app.state, "runtime", None), exc)
        if not database_unreachable(exc):
            log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
            return JSONResponse({"errcode": "M_UNKNOWN", "error": "Internal server error"}, 500)
        # PostgreSQL restarting or out of reach: pool_pre_ping reconnects once it is back.
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    str(exc.orig or exc).splitlines()[0][:200])
        return matrix_error_response(ServiceUnavailable("The database is unavailable right now; "
                                                        "try again shortly"))

    @app.exception_handler(sqlalchemy.exc.DataError)
    async def _bad_value(request: Request, exc: sqlalchemy.exc.DataError) -> JSONResponse:
        # A value the database cannot store (e.g. a NUL byte in a JSON body on PostgreSQL): the
        # client's input, not a server fault.
        log.info("value refused by the database on %s %s: %s", request.method, request.url.path,
                 exc.orig)
        return JSONResponse({"errcode": "M_INVALID_PARAM",
                             "error": "A parameter holds a value that cannot be stored"}, 400)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        dependency_error(getattr(request.app.state, "runtime", None), exc)
        return JSONResponse({"errcode": "M_UNKNOWN", "error": "Internal server error"}, 500)


def database_unreachable(exc: DBAPIError) -> bool:
    """The database could not be reached or dropped the connection (not a bad query)."""
    return bool(exc.connection_invalidated) or isinstance(exc, OperationalError | InterfaceError)
