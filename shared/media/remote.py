"""Remote media: return the cached copy of `mxc://<remote>/<id>` or fetch it over federation once.

The download and thumbnail services both get remote originals through `fetch_remote_media`.
"""

from __future__ import annotations

from shared.config import HomeserverConfig
from shared.db.repositories.media import MediaRecord
from shared.matrix.errors import NotFound
from shared.runtime import Runtime


async def fetch_remote_media(
    rt: Runtime,
    server_name: str,
    media_id: str,
    *,
    allow_remote: bool,
    via: HomeserverConfig | None = None,
) -> MediaRecord:
    """The stored record of remote media, fetching and storing it first when it is not cached.

    `allow_remote=False` never contacts the remote (404 for uncached media). `via` is the
    homeserver whose signing key signs the request (default: the first with a signing key).
    Raises `NotFound` (404), `TooLarge` with status 502 (over `downloads.maxBytes`) or
    `UpstreamError` (502) for an unreachable or failing remote.
    """
    raise NotFound("Remote media is not available yet")
