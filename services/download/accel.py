"""`downloads.accelRedirect`: where nginx finds the bytes of an authorised download.

The value goes in `X-Accel-Redirect`; nginx serves it from an internal location (deploy/nginx:
`internal;`, so a client can never ask for it directly). nginx takes the header as a URI, so
every part is percent-encoded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from urllib.parse import quote, urlsplit

from shared.config import AccelRedirectConfig
from shared.storage.base import Datastore
from shared.storage.file import FileDatastore
from shared.storage.s3 import S3Datastore

PRESIGNED_MAX_ENTRIES = 10_000


class PresignedUrls:
    """Presigned GETs reused for the first half of their life: signing one costs boto more CPU
    than the rest of an accelerated download, and nginx uses each within milliseconds."""

    def __init__(self, max_entries: int = PRESIGNED_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()

    def get(self, store: S3Datastore, key: str, lifetime_seconds: int) -> str:
        found = self._entries.get((store.id, key))
        now = time.monotonic()
        if found is not None and found[0] > now:
            return found[1]
        url = store.presigned_get_url(key, lifetime_seconds)
        self._entries[(store.id, key)] = (now + lifetime_seconds / 2, url)
        self._entries.move_to_end((store.id, key))
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return url


def accel_target(config: AccelRedirectConfig, store: Datastore, key: str,
                 presigned: PresignedUrls) -> str | None:
    """The internal URI nginx serves `key` of `store` from, or None to stream it ourselves."""
    if not config.enabled:
        return None
    if isinstance(store, FileDatastore):
        store.check_key(key)
        return f"{config.file_location}{quote(store.id, safe='')}/{quote(key)}"
    if isinstance(store, S3Datastore):
        url = urlsplit(presigned.get(store, key, config.s3_url_seconds))
        # nginx proxies to <scheme>://<host><path>?<query>: the host is what the URL was
        # signed for, so it goes in the Host header unchanged.
        path = url.path.lstrip("/")
        return f"{config.s3_location}{url.scheme}/{url.netloc}/{path}?{url.query}"
    return None
