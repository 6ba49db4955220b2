"""`downloads.accelRedirect`: where nginx finds the bytes of an authorised download.

The value goes in `X-Accel-Redirect`; nginx serves it from an internal location (deploy/nginx:
`internal;`, so a client can never ask for it directly). nginx takes the header as a URI, so
every part is percent-encoded.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from shared.config import AccelRedirectConfig
from shared.storage.base import Datastore
from shared.storage.file import FileDatastore
from shared.storage.s3 import PresignedUrls, S3Datastore


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
