"""The configured datastores, looked up by the kind of object to write or by id to read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from shared.storage.base import Datastore

DATASTORE_KINDS: frozenset[str] = frozenset({"local_media", "remote_media", "thumbnails", "archives", "all"})
"""`all` matches every kind. A datastore with no kinds is read-only: reachable by id only."""


class DatastoreRegistry:
    """Picks where new objects go (`for_kind`) and finds where old ones are (`get`).

    Order matters: the first datastore that accepts a kind wins, so operators control placement
    by the order of the `datastores` list.
    """

    def __init__(self, datastores: Sequence[Datastore]) -> None:
        """`Sequence`, not `list`, so a `list[FileDatastore]` is accepted too (lists are invariant)."""
        self._datastores = list(datastores)
        self._by_id: dict[str, Datastore] = {}
        for store in self._datastores:
            _check_kinds(store)
            if store.id in self._by_id:
                raise ValueError(f"duplicate datastore id {store.id!r}")
            self._by_id[store.id] = store

    def for_kind(self, kind: str) -> Datastore:
        """The datastore new objects of `kind` are written to."""
        if kind not in DATASTORE_KINDS - {"all"}:
            raise ValueError(f"unknown datastore kind {kind!r}")
        for store in self._datastores:
            if kind in store.kinds or "all" in store.kinds:
                return store
        raise LookupError(f"no datastore is configured for kind {kind!r} (or 'all')")

    def get(self, id: str) -> Datastore:
        """The datastore with this id, e.g. from a media row's `datastore_id`."""
        try:
            return self._by_id[id]
        except KeyError:
            raise KeyError(f"no datastore with id {id!r} is configured") from None

    def all(self) -> list[Datastore]:
        return list(self._datastores)

    async def close(self) -> None:
        """Close every datastore, even if some fail; then raise the first failure."""
        results = await asyncio.gather(*(store.close() for store in self._datastores), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def _check_kinds(store: Datastore) -> None:
    unknown = set(store.kinds) - DATASTORE_KINDS
    if unknown:
        raise ValueError(f"datastore {store.id!r} has unknown kinds: {sorted(unknown)}")
