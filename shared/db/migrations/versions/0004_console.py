"""Indexes for the operator console's usage and media pages.

Revision ID: 0004_console
Revises: 0003_archives
"""

from alembic import op

revision = "0004_console"
down_revision = "0003_archives"
branch_labels = None
depends_on = None

# (name, columns): each covers one console query, so it is answered from the index alone.
INDEXES = (
    # bytes per day and datastore (usage totals, storage over time, uploads per day, split)
    ("media_origin_created_idx", ["origin", "creation_ts", "datastore_id", "size_bytes"]),
    ("media_origin_user_idx", ["origin", "user_id", "size_bytes"]),  # top users
    ("media_user_created_idx", ["user_id", "creation_ts"]),  # a user's newest media
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "media", columns)


def downgrade() -> None:
    for name, _columns in INDEXES:
        op.drop_index(name, table_name="media")
