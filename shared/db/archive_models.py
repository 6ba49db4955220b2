"""Tables of exports, imports and datastore transfers (`0003_archives`).

Kept apart from `models.py` so the archive tables read as one unit; they share its `Base`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models import Base


class ExportRow(Base):
    """One export of a user's or a server's media."""

    __tablename__ = "exports"

    export_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity: Mapped[str] = mapped_column(Text)
    created_ts: Mapped[int] = mapped_column(BigInteger)
    task_id: Mapped[int | None] = mapped_column(BigInteger)


class ExportPartRow(Base):
    """A finished `.tgz` part of an export, stored in an `archives` datastore."""

    __tablename__ = "export_parts"

    export_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    part_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_name: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    datastore_id: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("export_parts_location_idx", "datastore_id", "location"),)


class ExportMediaRow(Base):
    """A manifest entry of a persisted part, in export order: the manifest and the resume point."""

    __tablename__ = "export_media"

    export_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_index: Mapped[int] = mapped_column(Integer)
    record_json: Mapped[str] = mapped_column(Text)


class ImportRow(Base):
    """An import in progress: parts arrive over HTTP, machine 0's task imports their media."""

    __tablename__ = "imports"

    import_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_ts: Mapped[int] = mapped_column(BigInteger)
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)


class ImportPartRow(Base):
    """An uploaded part, kept in an `archives` datastore until its import ends."""

    __tablename__ = "import_parts"

    import_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    part_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    datastore_id: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(Text)
    has_manifest: Mapped[bool | None] = mapped_column(Boolean)
    processed: Mapped[bool] = mapped_column(Boolean, default=False)


class DatastoreMoveRow(Base):
    """One object of a transfer: `planned` when the transfer started (the objects it covers are
    fixed then), `switched` once its records point at the target (the old copy is deleted after
    a grace period, then the row goes), `failed` when it could not be copied."""

    __tablename__ = "datastore_moves"

    task_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    datastore_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    location: Mapped[str] = mapped_column(String(512), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    switched_ts: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("datastore_moves_state_idx", "task_key", "state", "location"),)
