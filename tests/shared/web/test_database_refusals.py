"""A value the database refuses (a NUL byte in text on PostgreSQL, a number out of range) is the
client's input: 400 `M_INVALID_PARAM`, not a 500."""

from __future__ import annotations

import httpx
import sqlalchemy.exc
from fastapi import FastAPI

from shared.web.errors import install_error_handlers


async def test_a_value_the_database_cannot_store_is_400() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/store")
    async def store() -> None:
        raise sqlalchemy.exc.DataError(
            "INSERT ...", {}, ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        got = await client.get("/store")
    assert (got.status_code, got.json()["errcode"]) == (400, "M_INVALID_PARAM")
