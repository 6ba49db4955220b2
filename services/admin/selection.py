"""Media selections as task parameters: a `MediaSelector` to JSON and back, and the keyset
batches a task walks through (so its checkpoint is just a cursor)."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from shared.db.repositories.media import MediaRecord
from shared.db.repositories.media_selection import MediaSelector, count_selected, select_batch
from shared.runtime import Runtime

BATCH = 100


def selector_to_json(selector: MediaSelector) -> dict[str, Any]:
    return {k: v for k, v in asdict(selector).items() if v is not None}


def selector_from_json(data: dict[str, Any]) -> MediaSelector:
    values = dict(data)
    for name in ("origins", "not_origins"):
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    if values.get("mxcs") is not None:
        values["mxcs"] = tuple((o, m) for o, m in values["mxcs"])
    return MediaSelector(**values)


def parse_mxc(mxc: str) -> tuple[str, str] | None:
    if not mxc.startswith("mxc://"):
        return None
    origin, _, media_id = mxc[len("mxc://"):].partition("/")
    return (origin, media_id) if origin and media_id and "/" not in media_id else None


async def count(rt: Runtime, selector: MediaSelector) -> int:
    async with rt.sessions() as session:
        return await count_selected(session, selector)


async def next_batch(
    rt: Runtime, selector: MediaSelector, cursor: Any
) -> tuple[list[MediaRecord], Any]:
    """The next batch and the cursor after it. An explicit `mxcs` list is walked by index in
    chunks (each chunk asked of the database); any other selection by (origin, media_id)."""
    async with rt.sessions() as session:
        if selector.mxcs is not None:
            start = int(cursor or 0)
            chunk = selector.mxcs[start:start + BATCH]
            if not chunk:
                return [], start
            records = await select_batch(session, replace(selector, mxcs=chunk), None, BATCH)
            return records, start + len(chunk)
        after = tuple(cursor) if cursor else None
        records = await select_batch(session, selector, after, BATCH)
        new_cursor = [records[-1].origin, records[-1].media_id] if records else cursor
        return records, new_cursor


def exhausted(selector: MediaSelector, records: list[MediaRecord], cursor: Any) -> bool:
    if selector.mxcs is not None:
        return int(cursor or 0) >= len(selector.mxcs)
    return len(records) < BATCH
