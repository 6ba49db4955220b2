"""The usage rollups of 0005_usage_rollup: filled from the rows already there, then kept equal to
the sums over `media` and `thumbnails` by the database through inserts, deletes and updates,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.config import DatabaseConfig
from shared.db.engine import sync_url
from shared.db.migrate import run_migrations
from tests.infra.postgres import temporary_database

DAY_MS = 86_400_000


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield DatabaseConfig(sqlite=str(tmp_path / "rollup.db")).url
        return
    with temporary_database("mmr_rollup") as url:
        yield DatabaseConfig(postgres=url).url


def media(n: int, **overrides: Any) -> dict[str, Any]:
    row = {"origin": "here.example" if n % 5 else "there.example", "media_id": f"m{n}",
           "upload_name": None, "content_type": "image/png",
           "user_id": f"@u{n % 3}:here.example" if n % 5 else None, "sha256": f"{n:064x}",
           "size_bytes": 1000 + n, "creation_ts": 1_700_000_000_000 + n * DAY_MS // 3,
           "datastore_id": "a" if n % 2 else "b", "location": f"x/{n}",
           "quarantined": False, "authenticated": True, "last_access_ts": None}
    return row | overrides


def thumbnail(n: int) -> dict[str, Any]:
    row = media(n)
    return {"origin": row["origin"], "media_id": row["media_id"], "width": 32, "height": 32,
            "method": "scale", "animated": False, "content_type": "image/png",
            "sha256": row["sha256"], "size_bytes": 10 + n, "creation_ts": row["creation_ts"],
            "datastore_id": "a", "location": f"t/{n}"}


def insert(conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                         f"({', '.join(':' + c for c in columns)})"), rows)


def figures(conn: sa.Connection, query: str) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in conn.execute(sa.text(query)).all()}


def assert_rollups_match(conn: sa.Connection) -> None:
    assert figures(conn, """
        SELECT origin, day, datastore_id, SUM(size_bytes), SUM(files) FROM media_usage_days
        GROUP BY origin, day, datastore_id HAVING SUM(files) > 0""") == figures(conn, f"""
        SELECT origin, creation_ts / {DAY_MS}, datastore_id, SUM(size_bytes), COUNT(*) FROM media
        GROUP BY origin, creation_ts / {DAY_MS}, datastore_id""")
    assert figures(conn, """
        SELECT user_id, origin, SUM(size_bytes), SUM(files) FROM media_usage_users
        GROUP BY user_id, origin HAVING SUM(files) > 0""") == figures(conn, """
        SELECT user_id, origin, SUM(size_bytes), COUNT(*) FROM media
        WHERE user_id IS NOT NULL AND user_id <> '' GROUP BY user_id, origin""")
    assert figures(conn, """
        SELECT origin, SUM(size_bytes), SUM(files) FROM thumbnail_usage
        GROUP BY origin HAVING SUM(files) > 0""") == figures(conn, """
        SELECT origin, SUM(size_bytes), COUNT(*) FROM thumbnails GROUP BY origin""")


def test_rollups_are_filled_from_existing_rows_then_kept_by_the_database(database_url: str) -> None:
    run_migrations(database_url, target="0004_console")
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:
            insert(conn, "media", [media(n) for n in range(40)])
            insert(conn, "thumbnails", [thumbnail(n) for n in range(0, 40, 4)])
        run_migrations(database_url)
        with engine.begin() as conn:
            assert_rollups_match(conn)
            assert conn.execute(sa.text("SELECT SUM(files) FROM media_usage_days")).scalar() == 40
            # New rows, on days and for users the rollups have not seen yet.
            insert(conn, "media", [media(n, user_id="@new:here.example" if n % 2 else "")
                                   for n in range(40, 60)])
            insert(conn, "thumbnails", [thumbnail(n) for n in range(40, 60, 3)])
        with engine.begin() as conn:
            assert_rollups_match(conn)
            # A datastore transfer, a user change and a resize move bytes between rollup rows;
            # the frequent last-access and quarantine updates leave them alone.
            conn.execute(sa.text("UPDATE media SET datastore_id = 'c' WHERE media_id IN ('m1', 'm2')"))
            conn.execute(sa.text("UPDATE media SET user_id = '@other:here.example', "
                                 "size_bytes = 5 WHERE media_id = 'm3'"))
            conn.execute(sa.text("UPDATE media SET last_access_ts = 7, quarantined = true"))
            conn.execute(sa.text("DELETE FROM media WHERE media_id IN ('m4', 'm10', 'm41')"))
            conn.execute(sa.text("DELETE FROM thumbnails WHERE media_id = 'm8'"))
        with engine.begin() as conn:
            assert_rollups_match(conn)
            # Many rows in one statement (an import): several land on the same rollup rows.
            conn.execute(sa.text(
                "INSERT INTO media (origin, media_id, user_id, sha256, size_bytes, creation_ts,"
                " datastore_id, location, quarantined, authenticated) SELECT origin,"
                " media_id || 'copy', user_id, sha256, size_bytes, creation_ts, datastore_id,"
                " location, quarantined, authenticated FROM media"))
        with engine.begin() as conn:
            assert_rollups_match(conn)
            conn.execute(sa.text("DELETE FROM media"))
            conn.execute(sa.text("DELETE FROM thumbnails"))
        with engine.begin() as conn:
            assert_rollups_match(conn)
            assert conn.execute(sa.text("SELECT SUM(files) FROM media_usage_days")).scalar() == 0
    finally:
        engine.dispose()
