"""Archives: exports (parts, manifest entries), imports (uploaded parts), datastore moves.

Revision ID: 0003_archives
Revises: 0002_admin
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_archives"
down_revision = "0002_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("export_id", sa.String(64), primary_key=True),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("task_id", sa.BigInteger),
    )
    op.create_table(
        "export_parts",
        sa.Column("export_id", sa.String(64), primary_key=True),
        sa.Column("part_index", sa.Integer, primary_key=True),
        sa.Column("file_name", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("datastore_id", sa.String(255), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
    )
    op.create_index("export_parts_location_idx", "export_parts", ["datastore_id", "location"])
    op.create_table(
        "export_media",
        sa.Column("export_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("part_index", sa.Integer, nullable=False),
        sa.Column("record_json", sa.Text, nullable=False),
    )
    op.create_table(
        "imports",
        sa.Column("import_id", sa.String(64), primary_key=True),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("task_id", sa.BigInteger),
        sa.Column("closed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "import_parts",
        sa.Column("import_id", sa.String(64), primary_key=True),
        sa.Column("part_index", sa.Integer, primary_key=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("datastore_id", sa.String(255), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("has_manifest", sa.Boolean),
        sa.Column("processed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "datastore_moves",
        sa.Column("task_key", sa.String(64), primary_key=True),
        sa.Column("datastore_id", sa.String(255), primary_key=True),
        sa.Column("location", sa.String(512), primary_key=True),
        sa.Column("target_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("switched_ts", sa.BigInteger),
    )
    op.create_index("datastore_moves_state_idx", "datastore_moves", ["task_key", "state", "location"])
    # The transfer looks up rows by where their object lives.
    op.create_index("media_location_idx", "media", ["datastore_id", "location"])
    op.create_index("thumbnails_location_idx", "thumbnails", ["datastore_id", "location"])


def downgrade() -> None:
    op.drop_index("thumbnails_location_idx", "thumbnails")
    op.drop_index("media_location_idx", "media")
    for table in ("datastore_moves", "import_parts", "imports", "export_media", "export_parts", "exports"):
        op.drop_table(table)
