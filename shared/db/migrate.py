"""Running migrations once per cluster, and waiting for a schema this process can use.

Machine 0 (or `mmr migrate`) migrates under a PostgreSQL advisory lock, so two processes started
at once never both run DDL. Every other process waits until the schema is at a revision it knows.
Within one schema major, migrations are additive only, so an older process may run on a newer
schema of the same major (rolling upgrades, machine 0 first); a different major is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import sync_url

SCHEMA_MAJOR = 1
ADVISORY_LOCK_KEY = 0x6D6D72  # "mmr"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class SchemaError(Exception):
    """The database schema is not one this process can run on."""


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def known_revisions() -> list[str]:
    """Every revision this build knows, oldest first."""
    script = ScriptDirectory.from_config(_alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head_revision() -> str:
    return known_revisions()[-1]


def run_migrations(database_url: str, target: str = "head") -> str:
    """Upgrade the database to `target` (tests stop short of head) under a cluster-wide lock;
    return the revision reached."""
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
                conn.commit()
            try:
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, target)
                conn.commit()
                return _current_revision(conn) or ""
            finally:
                if postgres:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                    conn.commit()
    finally:
        engine.dispose()


def _current_revision(conn: Connection) -> str | None:
    inspector = sa.inspect(conn)
    if not inspector.has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _schema_major(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table("mmr_schema_info"):
        return None
    return conn.execute(sa.text("SELECT major FROM mmr_schema_info WHERE id = 1")).scalar()


def schema_status(conn: Connection) -> tuple[str | None, int | None]:
    return _current_revision(conn), _schema_major(conn)


def check_schema(revision: str | None, major: int | None) -> bool:
    """True when usable, False when not there yet (wait); raises when it never will be."""
    known = known_revisions()
    if revision == known[-1]:
        return True
    if revision is None or revision in known:
        return False
    if major != SCHEMA_MAJOR:
        raise SchemaError(
            f"the database schema is at revision {revision} of major {major}; this mmr build "
            f"knows major {SCHEMA_MAJOR} only: upgrade this process"
        )
    log.warning("database schema %s is newer than this build (%s); running on it", revision, known[-1])
    return True


async def wait_for_schema(engine: AsyncEngine, timeout_seconds: float) -> None:
    """Block until the schema is usable; raise SchemaError after `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        async with engine.connect() as conn:
            revision, major = await conn.run_sync(schema_status)
        if check_schema(revision, major):
            return
        if time.monotonic() >= deadline:
            raise SchemaError(_not_migrated(revision))
        log.info("waiting for migrations (schema at %s, need %s)", revision, head_revision())
        await asyncio.sleep(1.0)


def _not_migrated(revision: str | None) -> str:
    if revision is None:
        return (f"the database has no mmr schema, this process needs {head_revision()}: run "
                "`mmr migrate` or start the admin service (machine 0)")
    # A known older revision: machine 0 runs an older release (0.1.0 published its version
    # nowhere else), or has not migrated yet.
    return (f"the database schema is at {revision}, an older release's, and this process needs "
            f"{head_revision()}: upgrade machine 0 first (it migrates), or run `mmr migrate`")
