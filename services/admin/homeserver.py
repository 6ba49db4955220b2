"""What the admin service asks of a homeserver's admin API: the media of a room.

Only Synapse has such an API (`GET /_synapse/admin/v1/room/{roomId}/media`, answering
`{"local": [mxc...], "remote": [mxc...]}`); it is called with the caller's own token, so the
homeserver decides whether they may see the room's media, as matrix-media-repo does.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

from shared.config import HomeserverConfig
from shared.matrix.errors import BadRequest, Forbidden, MatrixError, UpstreamError

log = logging.getLogger(__name__)


async def room_media(
    http: httpx.AsyncClient, hs: HomeserverConfig, token: str | None, room_id: str
) -> list[str]:
    """Every mxc URI the homeserver knows in `room_id` (local first)."""
    if hs.admin_api_kind != "synapse":
        raise BadRequest(f"listing a room's media needs a Synapse homeserver (adminApiKind of "
                         f"{hs.name} is {hs.admin_api_kind!r})")
    if not hs.cs_api or not token:
        raise BadRequest("listing a room's media needs the homeserver and a homeserver admin's token")
    url = f"{hs.cs_api.rstrip('/')}/_synapse/admin/v1/room/{quote(room_id, safe='')}/media"
    try:
        response = await http.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=300)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"the homeserver could not be reached to list the room's media: {exc}") from exc
    if response.status_code in (401, 403):
        raise Forbidden("the homeserver refused to list this room's media to you")
    if response.status_code == 404:
        raise MatrixError(404, "M_NOT_FOUND", "the homeserver does not know this room")
    if response.status_code != 200:
        raise UpstreamError(f"the homeserver answered {response.status_code} to a room media list")
    body = response.json()
    found: list[str] = []
    for key in ("local", "remote"):
        values = body.get(key) if isinstance(body, dict) else None
        if isinstance(values, list):
            found += [v for v in values if isinstance(v, str)]
    return found
