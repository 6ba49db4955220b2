"""Between the services' frozen dataclasses and ORM rows whose columns carry the same names."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from shared.db.models import Base

RowT = TypeVar("RowT", bound=Base)
RecordT = TypeVar("RecordT")


def row_of(model: type[RowT], record: Any) -> RowT:
    """A new `model` row holding every field of the dataclass `record`."""
    return model(**{field.name: getattr(record, field.name) for field in fields(record)})


def record_of(kind: type[RecordT], row: Base) -> RecordT:
    """The dataclass `kind` read from the row's columns of the same names."""
    return kind(**{field.name: getattr(row, field.name) for field in fields(kind)})  # type: ignore[arg-type]
