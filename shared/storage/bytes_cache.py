"""Small objects' bytes kept in memory, least recently used out first.

Keys are (datastore id, location), and locations are content addressed: the bytes under one
never change, so entries need no invalidation. Whether a request may see them is decided
elsewhere (the media record, itself cached and invalidated on every announced change), so a
quarantined or purged item is refused before its bytes are looked up.
"""

from __future__ import annotations

from collections import OrderedDict

ObjectKey = tuple[str, str]  # (datastore_id, location)


class ObjectBytesCache:
    def __init__(self, max_bytes: int, max_entry_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[ObjectKey, bytes] = OrderedDict()
        self._size = 0

    def get(self, datastore_id: str, location: str) -> bytes | None:
        key = (datastore_id, location)
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
        return data

    def put(self, datastore_id: str, location: str, data: bytes) -> None:
        key = (datastore_id, location)
        if len(data) > self.max_entry_bytes or key in self._entries:
            return
        self._entries[key] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted)
