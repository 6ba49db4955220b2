"""Building datastores from the `datastores` config section."""

from __future__ import annotations

import logging
from pathlib import Path

from shared.config import DatastoreConfig, S3DatastoreOpts
from shared.storage.base import Datastore
from shared.storage.file import FileDatastore
from shared.storage.registry import DatastoreRegistry
from shared.storage.s3 import S3Datastore

log = logging.getLogger(__name__)


def _warn_ignored_opts(config: DatastoreConfig, opts: S3DatastoreOpts) -> None:
    # Accepted so an MMR config loads unchanged; they have no use in this design.
    if opts.prefix_length:
        log.warning("datastore %s: prefixLength is ignored: object keys are always spread "
                    "under two levels of hash prefixes", config.id)
    if opts.temp_path:
        log.warning("datastore %s: tempPath is ignored: uploads spool to repo.tempPath", config.id)
    if opts.redirect_when_cached:
        log.warning("datastore %s: redirectWhenCached is ignored: with publicBaseUrl, "
                    "redirects are always used where the route allows them", config.id)


def make_datastore(config: DatastoreConfig, temp_tag: str = "") -> Datastore:
    kinds = frozenset(config.for_kinds)
    if config.type == "file":
        return FileDatastore(id=config.id, kinds=kinds, path=Path(config.file_opts().path),
                             temp_tag=temp_tag)
    opts = config.s3_opts()
    _warn_ignored_opts(config, opts)
    return S3Datastore(
        id=config.id,
        kinds=kinds,
        endpoint=opts.endpoint,
        bucket=opts.bucket_name,
        region=opts.region,
        access_key_id=opts.access_key_id,
        access_secret=opts.access_secret,
        ssl=opts.ssl,
        path_style=opts.path_style,
        storage_class=opts.storage_class,
        public_base_url=opts.public_base_url,
        multipart=opts.multipart_uploads,
    )


def make_registry(configs: list[DatastoreConfig], temp_tag: str = "") -> DatastoreRegistry:
    """`temp_tag`: the process's `Runtime.temp_tag`, put into file datastores' temp names."""
    return DatastoreRegistry([make_datastore(c, temp_tag) for c in configs])
