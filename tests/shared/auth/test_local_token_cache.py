"""The in-process layer of the token cache: whoami answers believed for a few seconds without
asking Redis, never past their cluster-wide entry, forgotten at once by a logout through any
process (one token, or every token of the user), and not kept at all while the process cannot
hear logouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.auth.tokens import (
    CACHED_AT,
    LOCAL_TOKEN_SECONDS,
    LocalTokenCache,
    authenticate,
    forget_token,
    forget_user_tokens,
    token_hash_of,
)
from shared.config import HomeserverConfig, parse_config
from shared.coordination.inprocess import InProcessCoordinator
from shared.matrix.errors import MatrixError

HS = HomeserverConfig(name="example.org", csApi="")


@pytest.fixture
async def cache() -> AsyncIterator[LocalTokenCache]:
    """A cache that hears logouts (through an in-process coordinator)."""
    coordinator = InProcessCoordinator()
    made = LocalTokenCache()
    await made.listen(coordinator)
    yield made
    await made.close()
    await coordinator.close()


async def test_an_answer_is_believed_a_few_seconds_never_past_its_cluster_wide_entry(
    cache: LocalTokenCache,
) -> None:
    cache.put("fresh", {"user_id": "@a:example.org", CACHED_AT: time.time()}, ttl=300)
    cache.put("old", {"user_id": "@a:example.org", CACHED_AT: time.time() - 299.9}, ttl=300)
    assert cache.get("fresh") is not None
    time.sleep(0.2)
    assert cache.get("old") is None
    assert LOCAL_TOKEN_SECONDS <= 10


async def test_forget_user_drops_only_that_users_answers_of_that_homeserver(
    cache: LocalTokenCache,
) -> None:
    cache.put("whoami:example.org:t1:", {"user_id": "@a:example.org"}, 300)
    cache.put("whoami:example.org:t2:", {"user_id": "@b:example.org"}, 300)
    cache.put("whoami:other.org:t3:", {"user_id": "@a:example.org"}, 300)
    cache.forget_user(HS, "@a:example.org")
    assert cache.get("whoami:example.org:t1:") is None
    assert cache.get("whoami:example.org:t2:") is not None
    assert cache.get("whoami:other.org:t3:") is not None


async def test_a_logout_through_this_process_is_believed_at_once() -> None:
    """A token the process has cached, then logged out here: the next request asks the
    homeserver again (which, having no csApi here, refuses it)."""
    config = parse_config({"homeservers": [{"name": HS.name, "csApi": ""}],
                           "datastores": [], "database": {"sqlite": ":memory:"}})
    coordinator = InProcessCoordinator()
    local = LocalTokenCache()
    await local.listen(coordinator)
    async with httpx.AsyncClient() as http:
        for forget in ("token", "user"):
            key = f"whoami:{HS.name}:{token_hash_of('tok')}:"
            local.put(key, {"user_id": "@a:example.org"}, 300)
            user = await authenticate(config, coordinator, local, http, HS, "tok")
            assert user.user_id == "@a:example.org"
            if forget == "token":
                await forget_token(coordinator, local, HS, "tok", None)
            else:
                await forget_user_tokens(coordinator, local, config, HS, "@a:example.org")
            with pytest.raises(MatrixError) as refused:
                await authenticate(config, coordinator, local, http, HS, "tok")
            assert refused.value.errcode == "M_UNKNOWN_TOKEN", forget
    await local.close()
    await coordinator.close()


async def test_a_logout_through_another_process_is_heard_at_once() -> None:
    """`here` is one process's cache; the logout goes through another process (`there`, its
    own cache), sharing the coordinator as processes share Redis."""
    coordinator = InProcessCoordinator()
    here, there = LocalTokenCache(), LocalTokenCache()
    await here.listen(coordinator)
    key = f"whoami:{HS.name}:{token_hash_of('tok')}:"
    here.put(key, {"user_id": "@a:example.org"}, 300)
    here.put("whoami:example.org:other:", {"user_id": "@a:example.org"}, 300)
    await forget_token(coordinator, there, HS, "tok", None)
    await asyncio.sleep(0.05)
    assert here.get(key) is None
    config = parse_config({"homeservers": [{"name": HS.name, "csApi": ""}],
                           "datastores": [], "database": {"sqlite": ":memory:"}})
    await forget_user_tokens(coordinator, there, config, HS, "@a:example.org")
    await asyncio.sleep(0.05)
    assert here.get("whoami:example.org:other:") is None
    await here.close()
    await coordinator.close()


def test_a_cache_that_cannot_hear_logouts_keeps_nothing() -> None:
    unheard = LocalTokenCache()
    unheard.put("whoami:example.org:t:", {"user_id": "@a:example.org"}, 300)
    assert unheard.get("whoami:example.org:t:") is None
