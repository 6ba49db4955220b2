"""All SQL for the `url_previews` table: cached previews and cached failures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import UrlPreviewRow
from shared.db.repositories.unique import add_unless_taken

MAX_LANGUAGE_LENGTH = 255
"""The width of `url_previews.language`; longer Accept-Language values are cut to fit."""


@dataclass(frozen=True)
class CachedPreview:
    """A stored outcome: the OpenGraph dict, or the Matrix error the fetch ended in."""

    preview: dict[str, Any] | None = None
    error_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None

    def to_bytes(self) -> bytes:
        """A compact encoding for caches outside the database."""
        return json.dumps([self.preview, self.error_status, self.error_code, self.error_message],
                          separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedPreview:
        preview, status, code, message = json.loads(data)
        return cls(preview=preview, error_status=status, error_code=code, error_message=message)


def _to_cached(row: UrlPreviewRow) -> CachedPreview:
    if row.response_json is not None:
        return CachedPreview(preview=json.loads(row.response_json))
    return CachedPreview(
        error_status=row.error_status, error_code=row.error_code, error_message=row.error_message
    )


async def get_preview(
    session: AsyncSession, url: str, language: str, bucket_ts: int
) -> CachedPreview | None:
    row = await session.get(UrlPreviewRow, (url, language[:MAX_LANGUAGE_LENGTH], bucket_ts))
    return _to_cached(row) if row else None


async def insert_preview(
    session: AsyncSession,
    url: str,
    language: str,
    bucket_ts: int,
    outcome: CachedPreview,
    creation_ts: int,
) -> None:
    """Store an outcome; a row already there for the key wins (both came from the same fetch)."""
    row = UrlPreviewRow(
        url=url,
        language=language[:MAX_LANGUAGE_LENGTH],
        bucket_ts=bucket_ts,
        response_json=json.dumps(outcome.preview) if outcome.preview is not None else None,
        error_status=outcome.error_status,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        creation_ts=creation_ts,
    )
    await add_unless_taken(session, row)


async def delete_previews_before(session: AsyncSession, cutoff_ts: int) -> int:
    """Delete previews whose hour bucket starts at or before `cutoff_ts`; return how many."""
    result = await session.execute(
        delete(UrlPreviewRow).where(UrlPreviewRow.bucket_ts <= cutoff_ts)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
