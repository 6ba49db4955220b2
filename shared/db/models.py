"""SQLAlchemy table models. Only `shared/db/repositories/` queries them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class MediaRow(Base):
    """One piece of media: a local upload or a cached remote file."""

    __tablename__ = "media"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    upload_name: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    creation_ts: Mapped[int] = mapped_column(BigInteger)
    datastore_id: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(Text)
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    last_access_ts: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("media_sha256_idx", "sha256"),
        Index("media_user_idx", "user_id"),
        Index("media_origin_idx", "origin"),
        # 0004_console: the console's usage and media pages.
        Index("media_origin_created_idx", "origin", "creation_ts", "datastore_id", "size_bytes"),
        Index("media_origin_user_idx", "origin", "user_id", "size_bytes"),
        # 0005_usage_rollup: covering, for a user's media page.
        Index("media_user_created_size_idx", "user_id", "creation_ts", "size_bytes"),
    )


# 0005_usage_rollup: running sums the database keeps with triggers on `media` and `thumbnails`
# (see that revision). Read only; `slot` spreads concurrent writers over a few rows.


class _RunningSums:
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[int] = mapped_column(BigInteger)


class MediaUsageDayRow(_RunningSums, Base):
    """Bytes and files of media stored on one day, per origin and datastore."""

    __tablename__ = "media_usage_days"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # days since the epoch (UTC)
    datastore_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)


class MediaUsageUserRow(_RunningSums, Base):
    """Bytes and files an uploader stores, per origin."""

    __tablename__ = "media_usage_users"

    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)

    __table_args__ = (Index("media_usage_users_origin_idx", "origin"),)


class ThumbnailUsageRow(_RunningSums, Base):
    """Bytes and files of the thumbnails of one origin's media."""

    __tablename__ = "thumbnail_usage"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)


class MediaReservationRow(Base):
    """An ID handed out by `POST /_matrix/media/v1/create` that has no content yet."""

    __tablename__ = "media_reservations"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text)
    creation_ts: Mapped[int] = mapped_column(BigInteger)
    expires_ts: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("media_reservations_user_idx", "user_id"),)


class ThumbnailRow(Base):
    """A generated thumbnail of one media item at one size and method."""

    __tablename__ = "thumbnails"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    origin: Mapped[str] = mapped_column(String(255))
    media_id: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(16))
    animated: Mapped[bool] = mapped_column(Boolean)
    content_type: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    creation_ts: Mapped[int] = mapped_column(BigInteger)
    datastore_id: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint(
            "origin", "media_id", "width", "height", "method", "animated",
            name="thumbnails_unique_size",
        ),
    )


class UrlPreviewRow(Base):
    """A cached URL preview (or a cached failure) for one URL, language and hour bucket."""

    __tablename__ = "url_previews"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    language: Mapped[str] = mapped_column(String(255), primary_key=True)
    bucket_ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    response_json: Mapped[str | None] = mapped_column(Text)
    error_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    creation_ts: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("url_previews_creation_idx", "creation_ts"),)


class SchemaInfoRow(Base):
    """The schema's compatibility major, read by every process at start."""

    __tablename__ = "mmr_schema_info"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    major: Mapped[int] = mapped_column(Integer)


class BackgroundTaskRow(Base):
    """A background task: created by any admin process, run by machine 0 (`shared/tasks/`)."""

    __tablename__ = "background_tasks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)  # JSON
    state: Mapped[str | None] = mapped_column(Text)  # JSON: the last checkpoint
    result: Mapped[str | None] = mapped_column(Text)  # JSON: what the task returned
    start_ts: Mapped[int] = mapped_column(BigInteger)
    end_ts: Mapped[int | None] = mapped_column(BigInteger)  # None while unfinished
    error: Mapped[str | None] = mapped_column(Text)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("background_tasks_end_idx", "end_ts"),)


class AdminAuditRow(Base):
    """One mutating admin call: who, what, when, and how it ended."""

    __tablename__ = "admin_audit"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("admin_audit_ts_idx", "ts"),)


class MediaAttributesRow(Base):
    """Operator-set attributes of one media item (`purpose: pinned` keeps it from every purge)."""

    __tablename__ = "media_attributes"

    origin: Mapped[str] = mapped_column(String(255), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))

    __table_args__ = (Index("media_attributes_purpose_idx", "purpose"),)
