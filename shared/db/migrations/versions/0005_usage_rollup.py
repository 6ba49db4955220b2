"""Usage rollups kept by the database itself, so the console's usage and media pages read a few
hundred rows instead of every media row; and `size_bytes` in the user index (covering).

Three tables of running sums, each maintained by triggers on `media` / `thumbnails` (the
database is the one place every writer passes through: uploads, remote fetches, purges,
datastore transfers, imports, and rows written by hand) and filled from the existing rows here:

* `media_usage_days`: bytes and files per (origin, day stored, datastore);
* `media_usage_users`: bytes and files per (uploader, origin);
* `thumbnail_usage`: bytes and files of thumbnails per origin.

Each is split into `slot`s (`creation_ts % 4`), so concurrent uploads of one day or one user
mostly update different rows: on PostgreSQL a trigger's row lock lasts until its transaction
commits, and one row per day would make every upload of the day queue behind the others.
Updates of `last_access_ts` or `quarantined` (the frequent ones) fire nothing: the update
triggers are limited to the columns that move bytes between rollup rows.

Revision ID: 0005_usage_rollup
Revises: 0004_console
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_usage_rollup"
down_revision = "0004_console"
branch_labels = None
depends_on = None

SLOTS = 4
DAY_MS = 86_400_000


def _sums() -> tuple[sa.Column[int], sa.Column[int]]:
    return (sa.Column("size_bytes", sa.BigInteger, nullable=False),
            sa.Column("files", sa.BigInteger, nullable=False))


# rollup table -> (its key columns, the same computed from a source row, the row filter)
ROLLUP_KEYS = {
    "media_usage_days": (("origin", "day", "datastore_id", "slot"),
                         ("origin", f"creation_ts / {DAY_MS}", "datastore_id",
                          f"creation_ts % {SLOTS}"), "TRUE"),
    # Remote media has no uploader (NULL, or '' in old rows): nothing to count per user.
    "media_usage_users": (("user_id", "origin", "slot"),
                          ("user_id", "origin", f"creation_ts % {SLOTS}"),
                          "user_id IS NOT NULL AND user_id <> ''"),
    "thumbnail_usage": (("origin", "slot"), ("origin", f"creation_ts % {SLOTS}"), "TRUE"),
}
ROLLUPS_OF = {"media": ("media_usage_days", "media_usage_users"), "thumbnails": ("thumbnail_usage",)}
# The columns whose change moves a row's bytes from one rollup row to another.
MOVING_COLUMNS = {"media": ("origin", "user_id", "creation_ts", "datastore_id", "size_bytes"),
                  "thumbnails": ("origin", "creation_ts", "size_bytes")}


def _add(rollup: str) -> str:
    keys = ", ".join(ROLLUP_KEYS[rollup][0])
    return (f" ON CONFLICT ({keys}) DO UPDATE SET"
            f" size_bytes = {rollup}.size_bytes + excluded.size_bytes,"
            f" files = {rollup}.files + excluded.files;")


def _grouped(rollup: str, source: str, sign: str) -> str:
    """Add (sign '') or take away (sign '-') the rows of `source`, grouped: one statement."""
    keys, computed, where = ROLLUP_KEYS[rollup]
    positions = ", ".join(str(n + 1) for n in range(len(keys)))
    # Ordered: concurrent statements then lock the rollup rows they share in the same order.
    return (f"INSERT INTO {rollup} ({', '.join(keys)}, size_bytes, files)"
            f" SELECT {', '.join(computed)}, {sign}SUM(size_bytes), {sign}COUNT(*) FROM {source}"
            f" WHERE {where} GROUP BY {positions} ORDER BY {positions}" + _add(rollup))


def _one_row(rollup: str, row: str, sign: str) -> str:
    """Add or take away one row (`NEW` or `OLD` in a row trigger)."""
    keys, computed, where = ROLLUP_KEYS[rollup]
    values = ", ".join(_of_row(expression, row) for expression in computed)
    return (f" INSERT INTO {rollup} ({', '.join(keys)}, size_bytes, files)"
            f" SELECT {values}, {sign}{row}.size_bytes, {sign}1 WHERE {_of_row(where, row)}"
            + _add(rollup))


def _of_row(expression: str, row: str) -> str:
    for column in ("user_id", "origin", "creation_ts", "datastore_id"):
        expression = expression.replace(column, f"{row}.{column}")
    return expression


def _sqlite_triggers() -> None:
    for table, rollups in ROLLUPS_OF.items():
        def each(row: str, sign: str, rollups: tuple[str, ...] = rollups) -> str:
            return "".join(_one_row(rollup, row, sign) for rollup in rollups)
        moving = ", ".join(MOVING_COLUMNS[table])
        op.execute(f"CREATE TRIGGER {table}_usage_insert AFTER INSERT ON {table} BEGIN"
                   f"{each('NEW', '')} END")
        op.execute(f"CREATE TRIGGER {table}_usage_delete AFTER DELETE ON {table} BEGIN"
                   f"{each('OLD', '-')} END")
        op.execute(f"CREATE TRIGGER {table}_usage_update AFTER UPDATE OF {moving} ON {table} BEGIN"
                   f"{each('OLD', '-')}{each('NEW', '')} END")


def _postgres_triggers() -> None:
    """Inserts and deletes by statement, over their transition table: a bulk write (an import,
    a purge) is one grouped upsert per rollup, not one per row. Updates that move bytes are
    rare (transfers): by row, and only when a moving column really changed."""
    for table, rollups in ROLLUPS_OF.items():
        for event, sign, rows in (("insert", "", "NEW"), ("delete", "-", "OLD")):
            body = " ".join(_grouped(rollup, "changed", sign) for rollup in rollups)
            op.execute(f"CREATE FUNCTION {table}_usage_{event}() RETURNS trigger LANGUAGE plpgsql"
                       f" AS $$ BEGIN {body} RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {table}_usage_{event} AFTER {event.upper()} ON {table}"
                       f" REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT"
                       f" EXECUTE FUNCTION {table}_usage_{event}()")
        moved = "".join(_one_row(r, "OLD", "-") + _one_row(r, "NEW", "") for r in rollups)
        op.execute(f"CREATE FUNCTION {table}_usage_update() RETURNS trigger LANGUAGE plpgsql"
                   f" AS $$ BEGIN {moved} RETURN NULL; END $$")
        columns = MOVING_COLUMNS[table]
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        op.execute(f"CREATE TRIGGER {table}_usage_update AFTER UPDATE OF {', '.join(columns)}"
                   f" ON {table} FOR EACH ROW WHEN ({changed})"
                   f" EXECUTE FUNCTION {table}_usage_update()")


def _backfill() -> None:
    for table, rollups in ROLLUPS_OF.items():
        for rollup in rollups:
            op.execute(_grouped(rollup, table, ""))


def upgrade() -> None:
    op.create_table(
        "media_usage_days",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("day", sa.BigInteger, primary_key=True),
        sa.Column("datastore_id", sa.String(255), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        *_sums(),
    )
    op.create_table(
        "media_usage_users",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        *_sums(),
    )
    op.create_index("media_usage_users_origin_idx", "media_usage_users", ["origin"])
    op.create_table(
        "thumbnail_usage",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        *_sums(),
    )
    # Covering: a user's media page reads its rows newest first with their sizes.
    op.create_index("media_user_created_size_idx", "media", ["user_id", "creation_ts", "size_bytes"])
    op.drop_index("media_user_created_idx", table_name="media")
    if op.get_bind().dialect.name == "postgresql":
        # Taken before the backfill: no upload may slip in between it and the triggers.
        op.execute("LOCK TABLE media, thumbnails IN SHARE ROW EXCLUSIVE MODE")
        _postgres_triggers()
    else:
        _sqlite_triggers()
    _backfill()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in ROLLUPS_OF:
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER {table}_usage_{event}" + (f" ON {table}" if postgres else ""))
            if postgres:
                op.execute(f"DROP FUNCTION {table}_usage_{event}()")
    op.create_index("media_user_created_idx", "media", ["user_id", "creation_ts"])
    op.drop_index("media_user_created_size_idx", table_name="media")
    for rollup in ROLLUP_KEYS:
        op.drop_table(rollup)
