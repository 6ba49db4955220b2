"""Building datastores from the `datastores` config section."""

from __future__ import annotations

import logging
from pathlib import Path

from shared.config import DatastoreConfig
from shared.storage.base import Datastore
from shared.storage.file import FileDatastore
from shared.storage.registry import DatastoreRegistry
from shared.storage.s3 import S3Datastore

log = logging.getLogger(__name__)


def make_datastore(config: DatastoreConfig, temp_tag: str = "") -> Datastore:
    kinds = frozenset(config.for_kinds)
    if config.type == "file":
        return FileDatastore(id=config.id, kinds=kinds, path=Path(config.file_opts().path),
                             temp_tag=temp_tag)
    # prefixLength, tempPath and redirectWhenCached are accepted and listed as unused at start.
    opts = config.s3_opts()
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
