"""The federation client's guards: the per-server circuit breaker, and the deny list checked on
the address a connection would really go to (a real listener counts what reaches it)."""

from __future__ import annotations

import asyncio

import pytest

from shared.config import FederationConfig, TimeoutsConfig
from shared.coordination.inprocess import InProcessCoordinator
from shared.federation.client import CircuitBreaker, FederationClient, FederationUnavailable


async def test_the_breaker_opens_after_backoff_at_failures_and_a_success_closes_it() -> None:
    coordinator = InProcessCoordinator()
    breaker = CircuitBreaker(coordinator, failures_to_open=3)
    for _ in range(2):
        await breaker.record_failure("flaky.example")
    await breaker.check("flaky.example")  # still closed after two
    await breaker.record_failure("flaky.example")
    with pytest.raises(FederationUnavailable):
        await breaker.check("flaky.example")
    await breaker.check("other.example")  # per server
    await breaker.record_success("flaky.example")
    await breaker.check("flaky.example")
    await coordinator.close()


class Listener:
    """A loopback TCP server that counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def count(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(count, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "2130706433"])
async def test_denied_addresses_are_refused_before_connecting(host: str) -> None:
    listener = Listener()
    port = await listener.start()
    coordinator = InProcessCoordinator()
    client = FederationClient(FederationConfig(), TimeoutsConfig(), coordinator)
    try:
        with pytest.raises(FederationUnavailable, match=r"disallowed|does not resolve"):
            await client.json_request(f"{host}:{port}", "/_matrix/key/v2/server")
        assert listener.connections == 0
    finally:
        await client.close()
        await coordinator.close()
        await listener.stop()


async def test_allowed_addresses_are_connected_to() -> None:
    listener = Listener()
    port = await listener.start()
    coordinator = InProcessCoordinator()
    config = FederationConfig(denied_networks=["10.0.0.0/8"])
    client = FederationClient(config, TimeoutsConfig(), coordinator)
    try:
        with pytest.raises(FederationUnavailable):  # the listener hangs up: no TLS
            await client.json_request(f"127.0.0.1:{port}", "/_matrix/key/v2/server")
        assert listener.connections == 1
    finally:
        await client.close()
        await coordinator.close()
        await listener.stop()
