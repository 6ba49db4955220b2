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
    )


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
