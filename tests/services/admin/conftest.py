"""Fixtures of the admin tests: a database of their own (tasks are cluster-wide state, so a
task one test leaves unfinished must not be run by another test's machine 0)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.infra.postgres import temporary_database


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    with temporary_database("mmr_admin") as url:
        yield url
