"""The per-process caches' map: least recently used out past its size, entries missed after
their time."""

from __future__ import annotations

from shared.expiring_lru import ExpiringLru


def test_the_least_recently_used_entry_goes_first() -> None:
    lru: ExpiringLru[str, int] = ExpiringLru(2)
    lru.put("a", 1, 60)
    lru.put("b", 2, 60)
    assert lru.get("a") == 1  # get does not refresh; put does
    lru.put("a", 1, 60)
    lru.put("c", 3, 60)
    assert (lru.get("a"), lru.get("b"), lru.get("c"), len(lru)) == (1, None, 3, 2)


def test_an_entry_past_its_time_is_missed_and_dropped() -> None:
    lru: ExpiringLru[str, int] = ExpiringLru(10)
    lru.put("old", 1, -1)
    lru.put("new", 2, 60)
    assert lru.get("old") is None and len(lru) == 1
    assert lru.get("new") == 2


def test_pop_and_clear() -> None:
    lru: ExpiringLru[str, int] = ExpiringLru(10)
    lru.put("a", 1, 60)
    lru.put("b", 2, 60)
    lru.pop("a")
    lru.pop("missing")
    assert lru.get("a") is None and lru.get("b") == 2
    lru.clear()
    assert len(lru) == 0


def test_items_lists_the_entries_in_time_and_may_be_popped_while_walked() -> None:
    lru: ExpiringLru[str, int] = ExpiringLru(10)
    lru.put("a", 1, 60)
    lru.put("gone", 2, -1)
    lru.put("b", 3, 60)
    for key, _value in lru.items():
        lru.pop(key)
    assert len(lru) == 1  # only the expired one, never read since
