"""SafeTransport against real loopback servers: the check runs at connect time, on every hop."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme

from shared.config import UrlPreviewsConfig
from shared.net.ip_policy import IPAddress, IpPolicy
from shared.net.safe_transport import AddressBlocked, SafeTransport, StaticResolver
from tests.infra.fixture_web import FixtureWebServer, page, redirect

DEFAULTS = UrlPreviewsConfig()
DEFAULT_POLICY = IpPolicy.from_cidrs(DEFAULTS.allowed_networks, DEFAULTS.disallowed_networks)
ONLY_127_0_0_1 = IpPolicy.from_cidrs(["127.0.0.1/32"], [])


class RecordingResolver(StaticResolver):
    def __init__(self, answers: dict[str, list[str]]) -> None:
        super().__init__(answers)
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return await super().resolve(host, port)


def client(policy: IpPolicy, resolver: StaticResolver, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=SafeTransport(policy, resolver, **kwargs),  # type: ignore[arg-type]
                             trust_env=False, follow_redirects=True)


async def test_an_allowed_name_is_fetched_from_the_checked_address_with_its_own_host_header(
    web: FixtureWebServer,
) -> None:
    async with client(ONLY_127_0_0_1, StaticResolver({"public.test": ["127.0.0.1"]})) as http:
        response = await http.get(web.url("/", host="public.test"))
    assert response.status_code == 200
    assert web.requests[-1].headers["host"] == f"public.test:{web.port}"


@pytest.mark.parametrize(
    "answers",
    [["127.0.0.1"], ["93.184.216.34", "127.0.0.1"], ["127.0.0.1", "93.184.216.34"],
     ["::ffff:127.0.0.1"], ["10.0.0.5"], []],
    ids=["private", "public-then-private", "private-then-public", "ipv4-mapped", "rfc1918",
         "no-answer"],
)
async def test_a_name_answering_any_blocked_address_is_refused_without_connecting(
    web: FixtureWebServer, answers: list[str]
) -> None:
    async with client(DEFAULT_POLICY, StaticResolver({"evil.test": answers})) as http:
        with pytest.raises(AddressBlocked):
            await http.get(web.url("/", host="evil.test"))
    assert web.connections == 0


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "[::ffff:127.0.0.1]",
     "good.test@127.0.0.1"],
)
async def test_ip_spellings_and_userinfo_tricks_are_refused_without_asking_dns(
    web: FixtureWebServer, host: str
) -> None:
    resolver = RecordingResolver({"good.test": ["93.184.216.34"]})
    async with client(DEFAULT_POLICY, resolver) as http:
        with pytest.raises((AddressBlocked, httpx.InvalidURL)):
            await http.get(f"http://{host}:{web.port}/")
    assert web.connections == 0
    assert resolver.asked == []


async def test_a_redirect_to_a_blocked_address_is_refused_at_the_hop() -> None:
    with FixtureWebServer("127.0.0.1") as allowed, FixtureWebServer("127.0.0.2") as internal:
        internal.routes["/secret"] = page("secret")
        allowed.routes["/go"] = redirect(internal.url("/secret", host="internal.test"))
        resolver = StaticResolver({"internal.test": ["127.0.0.2"]})
        async with client(ONLY_127_0_0_1, resolver) as http:
            with pytest.raises(AddressBlocked):
                await http.get(allowed.url("/go"))
        assert allowed.hits("/go") == 1
        assert internal.connections == 0


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_web(tls_ca: trustme.CA) -> Iterator[FixtureWebServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("public.test").configure_cert(context)
    with FixtureWebServer(tls=context) as server:
        server.routes["/"] = page("<html>tls</html>")
        yield server


async def test_tls_verifies_the_certificate_of_the_name_while_connecting_to_the_address(
    tls_web: FixtureWebServer, tls_ca: trustme.CA
) -> None:
    verify = ssl.create_default_context()
    tls_ca.configure_trust(verify)
    resolver = StaticResolver({"public.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    async with client(ONLY_127_0_0_1, resolver, verify=verify) as http:
        assert (await http.get(tls_web.url("/", host="public.test"))).text == "<html>tls</html>"
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await http.get(tls_web.url("/", host="other.test"))


async def test_the_system_resolver_is_checked_too(web: FixtureWebServer) -> None:
    """No injected resolver: `localhost` goes through getaddrinfo and still meets the policy."""
    async with httpx.AsyncClient(transport=SafeTransport(DEFAULT_POLICY), trust_env=False) as http:
        with pytest.raises(AddressBlocked):
            await http.get(web.url("/", host="localhost"))
    assert web.connections == 0
