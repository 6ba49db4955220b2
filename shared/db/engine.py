"""Async engine and session factories."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from shared.config import DatabaseConfig

Statements = AsyncSession | AsyncConnection
"""What a repository function that only runs Core statements (`execute`, `rollback`) accepts:
an ORM session, or a plain connection where the session's bookkeeping is not worth its cost
(every upload's lookup and insert, `shared.media.store`)."""


def _sqlite_pragmas(dbapi_connection: object, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run while one writer commits; busy_timeout makes writers queue instead of
    # failing with "database is locked" under concurrent uploads.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(config: DatabaseConfig, application_name: str) -> AsyncEngine:
    url = config.url
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=config.pool.max_idle_connections or 1,
        max_overflow=max(config.pool.max_connections - config.pool.max_idle_connections, 0),
        pool_pre_ping=True,
        connect_args={"application_name": f"mmr-{application_name}"},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_url(async_url: str) -> str:
    """The same database for a synchronous engine (migrations run synchronously)."""
    return async_url.replace("sqlite+aiosqlite", "sqlite")

