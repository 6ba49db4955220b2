"""Migrations run once under a lock; other processes wait for a schema they know."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from shared.config import DatabaseConfig
from shared.db.engine import create_engine
from shared.db.migrate import SchemaError, head_revision, run_migrations, wait_for_schema
from tests.infra.postgres import temporary_database


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with temporary_database("mmr_migrations") as url:
        yield url


def pg_config(url: str) -> DatabaseConfig:
    return DatabaseConfig(postgres=url)


def tables(url: str) -> set[str]:
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'").fetchall()
    return {r[0] for r in rows}


def test_migrations_create_the_schema_on_postgres(fresh_pg: str) -> None:
    assert run_migrations(pg_config(fresh_pg).url) == head_revision()
    assert {"media", "media_reservations", "thumbnails", "url_previews"} <= tables(fresh_pg)
    # Running again is a no-op.
    assert run_migrations(pg_config(fresh_pg).url) == head_revision()


def test_migrations_create_the_schema_on_sqlite(tmp_path: Path) -> None:
    config = DatabaseConfig(sqlite=str(tmp_path / "m.db"))
    assert run_migrations(config.url) == head_revision()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert "media" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_concurrent_migrations_run_once_under_the_advisory_lock(fresh_pg: str) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            results.append(run_migrations(pg_config(fresh_pg).url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [head_revision()] * 4


async def test_a_process_waits_for_machine_0_to_migrate(fresh_pg: str) -> None:
    engine = create_engine(pg_config(fresh_pg), "test")
    try:
        waiter = asyncio.create_task(wait_for_schema(engine, timeout_seconds=30))
        await asyncio.sleep(1.5)
        assert not waiter.done(), "must not run on an empty database"
        await asyncio.to_thread(run_migrations, pg_config(fresh_pg).url)
        await asyncio.wait_for(waiter, 10)
    finally:
        await engine.dispose()


async def test_waiting_gives_up_with_a_clear_error(fresh_pg: str) -> None:
    engine = create_engine(pg_config(fresh_pg), "test")
    try:
        with pytest.raises(SchemaError, match="mmr migrate"):
            await wait_for_schema(engine, timeout_seconds=0)
    finally:
        await engine.dispose()


async def test_a_schema_of_another_major_is_refused(fresh_pg: str) -> None:
    run_migrations(pg_config(fresh_pg).url)
    with psycopg.connect(fresh_pg.replace("postgres://", "postgresql://", 1)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
        conn.execute("UPDATE mmr_schema_info SET major = 2")
    engine = create_engine(pg_config(fresh_pg), "test")
    try:
        with pytest.raises(SchemaError, match="major 2"):
            await wait_for_schema(engine, timeout_seconds=5)
    finally:
        await engine.dispose()


async def test_a_newer_schema_of_the_same_major_is_accepted(fresh_pg: str) -> None:
    run_migrations(pg_config(fresh_pg).url)
    with psycopg.connect(fresh_pg.replace("postgres://", "postgresql://", 1)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    engine = create_engine(pg_config(fresh_pg), "test")
    try:
        await wait_for_schema(engine, timeout_seconds=5)
    finally:
        await engine.dispose()
