"""All SQL for the `media_reservations` table: IDs handed out by `POST /create` (async uploads)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import Statements
from shared.db.models import MediaReservationRow
from shared.db.repositories.mapping import record_of, row_of
from shared.db.repositories.unique import add_unless_taken


@dataclass(frozen=True)
class Reservation:
    """A media ID reserved for `user_id` that has no content yet."""

    origin: str
    media_id: str
    user_id: str
    creation_ts: int
    expires_ts: int

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_ts

    @property
    def mxc(self) -> str:
        return f"mxc://{self.origin}/{self.media_id}"


class ReservationTaken(Exception):
    """A reservation with that (origin, media_id) already exists."""


def _to_reservation(row: MediaReservationRow) -> Reservation:
    return record_of(Reservation, row)


async def insert_reservation(session: AsyncSession, reservation: Reservation) -> None:
    """Insert it; raise ReservationTaken on an ID collision (the transaction is rolled back)."""
    row = row_of(MediaReservationRow, reservation)
    if not await add_unless_taken(session, row):
        raise ReservationTaken(reservation.mxc)


async def get_reservation(session: AsyncSession, origin: str, media_id: str) -> Reservation | None:
    row = await session.get(MediaReservationRow, (origin, media_id))
    return _to_reservation(row) if row else None


async def delete_reservation(session: Statements, origin: str, media_id: str) -> None:
    """Remove it (no commit: the caller commits it with the media row that replaces it)."""
    await session.execute(
        delete(MediaReservationRow).where(
            MediaReservationRow.origin == origin, MediaReservationRow.media_id == media_id
        )
    )


async def pending_for_user(session: AsyncSession, user_id: str, now_ms: int) -> tuple[int, int | None]:
    """(number of unexpired reservations of the user, the earliest time one of them expires)."""
    stmt = select(func.count(), func.min(MediaReservationRow.expires_ts)).where(
        MediaReservationRow.user_id == user_id, MediaReservationRow.expires_ts > now_ms
    )
    count, first_expiry = (await session.execute(stmt)).one()
    return int(count), (int(first_expiry) if first_expiry is not None else None)


async def delete_expired_reservations(session: AsyncSession, now_ms: int) -> int:
    """Remove reservations that expired unused; return how many (no commit)."""
    result = await session.execute(
        delete(MediaReservationRow).where(MediaReservationRow.expires_ts <= now_ms)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def count_pending(session: AsyncSession, now_ms: int) -> int:
    """Unexpired reservations of every user: async uploads still to come."""
    stmt = select(func.count()).select_from(MediaReservationRow).where(
        MediaReservationRow.expires_ts > now_ms)
    return int((await session.execute(stmt)).scalar_one())
