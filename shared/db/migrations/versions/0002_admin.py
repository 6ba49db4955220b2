"""Admin: background tasks, the admin audit log, media attributes (pinned media).

Revision ID: 0002_admin
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_admin"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "background_tasks",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("state", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("start_ts", sa.BigInteger, nullable=False),
        sa.Column("end_ts", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total", sa.BigInteger),
        sa.Column("created_by", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("background_tasks_end_idx", "background_tasks", ["end_ts"])
    op.create_table(
        "admin_audit",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("query", sa.Text),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("admin_audit_ts_idx", "admin_audit", ["ts"])
    op.create_table(
        "media_attributes",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("media_id", sa.String(255), primary_key=True),
        sa.Column("purpose", sa.String(32), nullable=False),
    )
    op.create_index("media_attributes_purpose_idx", "media_attributes", ["purpose"])
    op.create_index("media_origin_idx", "media", ["origin"])


def downgrade() -> None:
    op.drop_index("media_origin_idx", "media")
    for table in ("media_attributes", "admin_audit", "background_tasks"):
        op.drop_table(table)
