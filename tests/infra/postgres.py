"""A throwaway PostgreSQL database on the real server for one test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("MMR_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def temporary_database(prefix: str = "mmr_test") -> Iterator[str]:
    """Create a fresh database, yield its `postgres://` URL, drop it afterwards.

    Fails loudly when PostgreSQL cannot be reached: the suite never skips a real dependency.
    """
    admin = admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {admin} (scripts/start-services.sh starts it): {exc}"
        ) from exc
    try:
        yield _with_database(admin, name).replace("postgresql://", "postgres://", 1)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
