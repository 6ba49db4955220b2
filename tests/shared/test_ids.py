"""Snowflakes, machine IDs, media IDs and the spec's allow-lists."""

from __future__ import annotations

import re
import threading

import pytest

from shared.ids.machine_id import MachineIdError, resolve_machine_id
from shared.ids.media_id import is_valid_media_id, is_valid_server_name, new_media_id
from shared.ids.snowflake import SnowflakeGenerator, decompose


def test_snowflakes_are_unique_and_increasing_across_threads() -> None:
    gen = SnowflakeGenerator(7)
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        ids = [gen.next_id() for _ in range(5000)]
        with lock:
            seen.extend(ids)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 20000
    assert all(decompose(i)[1] == 7 for i in seen)


def test_two_machines_never_collide_at_the_same_millisecond() -> None:
    a = SnowflakeGenerator(1, clock=lambda: 1_700_000_000_000)
    b = SnowflakeGenerator(2, clock=lambda: 1_700_000_000_000)
    assert a.next_id() != b.next_id()


def test_a_clock_stepping_back_waits_instead_of_reusing_time() -> None:
    times = iter([2_000_000_000_000, 1_999_999_999_000, 1_999_999_999_500, 2_000_000_000_001])
    slept: list[float] = []
    gen = SnowflakeGenerator(3, clock=lambda: next(times), sleep=slept.append)
    first, second = gen.next_id(), gen.next_id()
    assert second > first
    assert slept, "the generator should have waited for the clock"
    assert decompose(second)[0] == 2_000_000_000_001


def test_bit_layout() -> None:
    gen = SnowflakeGenerator(1023, clock=lambda: 1_288_834_974_657 + 5)
    assert decompose(gen.next_id()) == (1_288_834_974_657 + 5, 1023, 0)


@pytest.mark.parametrize("value", ["abc", "-1", "1024", "", " ", "1.5", "0x1"])
def test_invalid_machine_ids_stop_startup(value: str) -> None:
    with pytest.raises(MachineIdError, match="MACHINE_ID"):
        resolve_machine_id("upload", env={"MACHINE_ID": value})


def test_machine_id_rules_per_service() -> None:
    assert resolve_machine_id("admin", env={}) == 0
    assert resolve_machine_id("embedded", env={}) == 0
    assert resolve_machine_id("upload", env={"MACHINE_ID": "1023"}) == 1023
    with pytest.raises(MachineIdError, match="needs MACHINE_ID"):
        resolve_machine_id("download", env={})
    with pytest.raises(MachineIdError, match="cannot be MACHINE_ID 0"):
        resolve_machine_id("thumbnail", env={"MACHINE_ID": "0"})
    with pytest.raises(MachineIdError, match="must be MACHINE_ID 0"):
        resolve_machine_id("admin", env={"MACHINE_ID": "4"})


def test_media_ids_are_unique_unguessable_and_spec_shaped() -> None:
    gen = SnowflakeGenerator(9)
    ids = {new_media_id(gen) for _ in range(2000)}
    assert len(ids) == 2000
    for media_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", media_id)
        assert len(media_id) == 27  # 11 chars of snowflake + 16 chars (96 bits) of randomness
    # The random part differs even between consecutive IDs.
    a, b = sorted(ids)[:2]
    assert a[11:] != b[11:]


@pytest.mark.parametrize("media_id", ["abc", "A-b_9", "x" * 255])
def test_valid_media_ids(media_id: str) -> None:
    assert is_valid_media_id(media_id)


@pytest.mark.parametrize("media_id", ["", "../etc", "a/b", "a.b", "a b", "%2e%2e", "x" * 256, "é"])
def test_invalid_media_ids(media_id: str) -> None:
    assert not is_valid_media_id(media_id)


@pytest.mark.parametrize("name", ["example.org", "localhost", "localhost:8448", "1.2.3.4",
                                  "1.2.3.4:80", "[::1]", "[2001:db8::1]:8448", "a-b.example.org"])
def test_valid_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize("name", ["", "..", "../x", "a/b", "ex ample.org", "example.org:0",
                                  "example.org:65536", "example.org:", "[::1", "[zz::1]",
                                  "999.1.1.1", "-bad.example", "a_b.example", "x" * 256])
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)
