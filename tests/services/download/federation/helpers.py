"""Looking at what a federation fetch left behind."""

from __future__ import annotations

from shared.db.repositories.media import MediaRecord, get_media
from shared.runtime import Runtime
from tests.infra.synapse import SynapseServer


def media_id_of(mxc: str) -> str:
    return mxc.rsplit("/", 1)[1]


def federation_requests(peer: SynapseServer, media_id: str) -> int:
    """How many federation media downloads of `media_id` the peer has answered."""
    return peer.count_requests(f"/_matrix/federation/v1/media/download/{media_id}")


async def stored_record(rt: Runtime, server_name: str, media_id: str) -> MediaRecord | None:
    async with rt.sessions() as session:
        return await get_media(session, server_name, media_id)
