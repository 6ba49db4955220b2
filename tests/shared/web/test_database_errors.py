"""A database that cannot be reached is an outage (503 with Retry-After), a bad query a bug (500)."""

from __future__ import annotations

import httpx
import sqlalchemy.exc
from fastapi import FastAPI

from shared.web.errors import database_unreachable, install_error_handlers


def _app(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/")
    async def fail() -> None:
        raise error

    return app


async def _answer(error: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get("/")


async def test_an_unreachable_database_is_a_503_with_retry_after() -> None:
    gone = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert database_unreachable(gone)
    answer = await _answer(gone)
    assert answer.status_code == 503 and "Retry-After" in answer.headers
    assert answer.json()["errcode"] == "M_UNKNOWN" and "database" in answer.json()["error"]


async def test_a_bad_query_stays_a_500() -> None:
    bad = sqlalchemy.exc.ProgrammingError("SELEC 1", {}, Exception("syntax error"))
    assert not database_unreachable(bad)
    answer = await _answer(bad)
    assert answer.status_code == 500 and answer.json()["errcode"] == "M_UNKNOWN"
