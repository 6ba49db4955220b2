"""Temp names carry their owner, so a killed process's successor sweeps exactly its leftovers.

Spools (uploads, remote fetches, previews, datastore moves, archive imports) and archive export
parts, left as a `kill -9` leaves them: swept when their owner is a dead process of this machine
ID; kept when it is alive or another machine's.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from shared.archive.writer import ArchivedMedia, ArchiveWriter, FinishedPart
from shared.storage.leftovers import TempOwner, sweep_temp_dir
from shared.storage.spool import spool_to_temp

MACHINE = 5
# This test's own pid with another start time: the process that had the pid is gone.
DEAD = TempOwner(MACHINE, os.getpid(), 1)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_dead_owners_spool_is_swept_and_live_or_other_ones_are_kept(tmp_path: Path) -> None:
    owners = {"dead": DEAD, "live": TempOwner.current(MACHINE),
              "other machine": TempOwner(MACHINE + 1, os.getpid(), 1)}
    spooled = {name: await spool_to_temp(_chunks(b"x" * 1000), tmp_path, None, owner.tag)
               for name, owner in owners.items()}
    assert all(TempOwner.of_name(spooled[n].path.name) == owners[n] for n in owners)
    swept = sweep_temp_dir(tmp_path, MACHINE)
    assert (swept.entries, swept.bytes) == (1, 1000)
    assert not spooled["dead"].path.exists()
    assert spooled["live"].path.exists() and spooled["other machine"].path.exists()


async def test_an_unfinished_export_part_of_a_dead_owner_is_swept(tmp_path: Path) -> None:
    async def sink(part: FinishedPart) -> None:
        raise AssertionError("the part is never finished: its exporter is killed first")

    writer = ArchiveWriter(entity="example.org", created_ts=1_700_000_000_000,
                           target_bytes_per_part=1 << 30, temp_dir=tmp_path, temp_tag=DEAD.tag,
                           sink=sink)
    media = ArchivedMedia(origin="example.org", media_id="m1", upload_name=None,
                          content_type="image/png", user_id=None, creation_ts=1_700_000_000_000,
                          size_bytes=3)
    await writer.append(media, _chunks(b"abc"))
    (part,) = list(tmp_path.iterdir())
    assert TempOwner.of_name(part.name) == DEAD
    assert sweep_temp_dir(tmp_path, MACHINE).entries == 1
    assert list(tmp_path.iterdir()) == []
