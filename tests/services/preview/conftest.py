"""Preview servers on loopback and the fixture site they preview.

* `web` (127.0.0.1) serves the fixture pages; `internal` (127.0.0.2) stands for an internal
  service no test config allows. Both count the TCP connections they accept.
* `previewer` is the embedded default configured to allow ONLY `web`'s address; `guarded` keeps
  the default deny list. Both resolve names through a resolver the tests control
  (`RESOLVER_ANSWERS`), so public-looking names can point at private addresses.
* `cluster_previewers` are two preview processes of one cluster (PostgreSQL, Redis, S3).

Servers are session scoped (starting one costs a migration); tests keep their cache entries apart
by asking for unique URLs (`unique`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mmr.embedded import all_routers
from shared.config import MmrConfig, parse_config
from shared.db.migrate import run_migrations
from shared.net.safe_transport import StaticResolver
from shared.runtime import Runtime
from shared.web.app import make_app
from tests.conftest import (
    RunningMmr,
    cluster_raw_config,
    embedded_raw_config,
    new_bucket,
    spare_machine_id,
)
from tests.infra.fixture_web import FixtureWebServer
from tests.infra.http_server import ServerThread
from tests.infra.seaweedfs import S3Server
from tests.services.preview import pages

RESOLVER_ANSWERS = {
    "site.test": ["127.0.0.1"],                     # the fixture site under a name
    "evil.test": ["127.0.0.1"],                     # a "public" name pointing at loopback
    "mixed.test": ["93.184.216.34", "127.0.0.1"],   # one public and one private answer
    "v6mapped.test": ["::ffff:127.0.0.1"],
    "internal.test": ["127.0.0.2"],
    "denied.test": ["127.0.0.1"],
}
PAGE_SIZE_LIMIT = 1024 * 1024
TIMEOUT_SECONDS = 3.0
URL_DENY_LIST = ["*.denied.test", "denied.test", "^https?://[^/]+/private/"]


def unique(url: str) -> str:
    """The same page under a URL no other test has asked for (the fixture site ignores queries)."""
    return f"{url}{'&' if '?' in url else '?'}t={uuid.uuid4().hex}"


@dataclass
class Previewer(RunningMmr):
    async def preview(self, url: str, **params: Any) -> Any:
        async with self.client() as client:
            return await client.get("/_matrix/client/v1/media/preview_url",
                                    params={"url": url, **params})


async def _install_resolver(rt: Runtime) -> None:
    rt.resolver = StaticResolver(RESOLVER_ANSWERS)


def serve_previewer(stack: ExitStack, config: MmrConfig, data_dir: Path,
                    machine_id: int = 0) -> Previewer:
    app = make_app("embedded", all_routers(), config=config, machine_id=machine_id,
                   start_hooks=[_install_resolver])
    server = stack.enter_context(ServerThread(app))
    return Previewer(server.url, config, data_dir)


def preview_overrides(**url_previews: Any) -> dict[str, Any]:
    return {
        "urlPreviews": {
            "allowedNetworks": ["127.0.0.1/32"], "disallowedNetworks": [], "oEmbed": True,
            "maxPageSizeBytes": PAGE_SIZE_LIMIT, "urlDenyList": URL_DENY_LIST, **url_previews,
        },
        "timeouts": {"urlPreviewTimeoutSeconds": TIMEOUT_SECONDS},
    }


@pytest.fixture(scope="session")
def internal() -> Iterator[FixtureWebServer]:
    with FixtureWebServer("127.0.0.2") as server:
        yield server


@pytest.fixture(scope="session")
def web(internal: FixtureWebServer) -> Iterator[FixtureWebServer]:
    with FixtureWebServer("127.0.0.1") as server:
        pages.install(server, internal)
        yield server


@pytest.fixture(scope="session")
def previewer(tmp_path_factory: pytest.TempPathFactory, web: FixtureWebServer) -> Iterator[Previewer]:
    data_dir = tmp_path_factory.mktemp("previewer")
    config = parse_config(embedded_raw_config(data_dir, **preview_overrides()))
    with ExitStack() as stack:
        yield serve_previewer(stack, config, data_dir)


@pytest.fixture(scope="session")
def guarded(tmp_path_factory: pytest.TempPathFactory, web: FixtureWebServer) -> Iterator[Previewer]:
    """Default allowed/disallowed networks: nothing on loopback may be fetched."""
    data_dir = tmp_path_factory.mktemp("guarded")
    overrides = preview_overrides()
    del overrides["urlPreviews"]["allowedNetworks"], overrides["urlPreviews"]["disallowedNetworks"]
    config = parse_config(embedded_raw_config(data_dir, **overrides))
    with ExitStack() as stack:
        yield serve_previewer(stack, config, data_dir)


@pytest.fixture(scope="session")
def cluster_previewers(
    tmp_path_factory: pytest.TempPathFactory, web: FixtureWebServer, pg_url: str, redis_url: str,
    s3_server: S3Server,
) -> Iterator[tuple[Previewer, Previewer]]:
    """Two preview processes of one cluster (machine IDs of their own: they live all session on
    the session database, where machine IDs are leased)."""
    data_dir = tmp_path_factory.mktemp("cluster-previewers")
    config = parse_config(cluster_raw_config(data_dir, pg_url, redis_url, s3_server,
                                             new_bucket(s3_server), **preview_overrides()))
    run_migrations(config.database.url)  # machine 0's job; these are two others
    with ExitStack() as stack:
        yield (serve_previewer(stack, config, data_dir, machine_id=spare_machine_id()),
               serve_previewer(stack, config, data_dir, machine_id=spare_machine_id()))
