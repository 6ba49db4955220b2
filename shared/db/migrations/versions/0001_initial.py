"""Initial schema: media, async-upload reservations, thumbnails, URL previews.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("media_id", sa.String(255), primary_key=True),
        sa.Column("upload_name", sa.Text),
        sa.Column("content_type", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("creation_ts", sa.BigInteger, nullable=False),
        sa.Column("datastore_id", sa.String(255), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("quarantined", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("authenticated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_access_ts", sa.BigInteger),
    )
    op.create_index("media_sha256_idx", "media", ["sha256"])
    op.create_index("media_user_idx", "media", ["user_id"])
    op.create_table(
        "media_reservations",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("media_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("creation_ts", sa.BigInteger, nullable=False),
        sa.Column("expires_ts", sa.BigInteger, nullable=False),
    )
    op.create_index("media_reservations_user_idx", "media_reservations", ["user_id"])
    op.create_table(
        "thumbnails",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("media_id", sa.String(255), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("animated", sa.Boolean, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("creation_ts", sa.BigInteger, nullable=False),
        sa.Column("datastore_id", sa.String(255), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.UniqueConstraint("origin", "media_id", "width", "height", "method", "animated",
                            name="thumbnails_unique_size"),
    )
    op.create_table(
        "url_previews",
        sa.Column("url", sa.Text, primary_key=True),
        sa.Column("language", sa.String(255), primary_key=True),
        sa.Column("bucket_ts", sa.BigInteger, primary_key=True),
        sa.Column("response_json", sa.Text),
        sa.Column("error_status", sa.Integer),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text),
        sa.Column("creation_ts", sa.BigInteger, nullable=False),
    )
    op.create_index("url_previews_creation_idx", "url_previews", ["creation_ts"])
    schema_info = op.create_table(
        "mmr_schema_info",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("major", sa.Integer, nullable=False),
    )
    op.bulk_insert(schema_info, [{"id": 1, "major": 1}])


def downgrade() -> None:
    for table in ("mmr_schema_info", "url_previews", "thumbnails", "media_reservations", "media"):
        op.drop_table(table)
