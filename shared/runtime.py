"""Everything a process holds for its lifetime, built once at start and handed to the services.

A `Runtime` is what FastAPI dependencies read from `app.state.runtime`, and what tests build
around real PostgreSQL, Redis and S3 instances. What not every process needs is a typed field
built on first use (`federation`, `access`, `local_tokens`, `media_records`, `thumbnail_queue`),
or, for state a service owns, a `part(Kind)` built by `Kind.build(rt)`; each is closed with the
runtime.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol, Self, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth.tokens import LocalTokenCache
from shared.cluster.presence import Claim, ClusterPresence, join_cluster
from shared.config import HomeserverConfig, MmrConfig
from shared.coordination.base import Coordinator
from shared.coordination.envelope import VersionedCoordinator
from shared.coordination.factory import make_coordinator
from shared.coordination.failopen import FailOpenCoordinator
from shared.coordination.queue import WorkQueue, make_work_queue
from shared.db.engine import create_engine, create_sessionmaker
from shared.db.migrate import run_migrations, wait_for_schema
from shared.federation.context import Federation
from shared.ids.machine_id import BACKGROUND_MACHINE_ID
from shared.ids.snowflake import SnowflakeGenerator
from shared.matrix.errors import UnknownHost
from shared.media import thumbnail_queue
from shared.media.access import AccessRecorder
from shared.media.records import MediaRecordCache
from shared.metrics.record import coordination_metrics
from shared.metrics.state import ProcessActivity
from shared.net.safe_transport import Resolver
from shared.storage.factory import make_registry
from shared.storage.leftovers import TempOwner, sweep_own_leftovers
from shared.storage.registry import DatastoreRegistry
from shared.web.middleware import homeserver_var, host_var

log = logging.getLogger(__name__)


class Part(Protocol):
    """Per-process state a service owns (e.g. the thumbnail worker pool)."""

    @classmethod
    def build(cls, rt: Runtime) -> Self: ...

    async def close(self) -> None: ...


P = TypeVar("P", bound=Part)


@dataclass
class Runtime:
    config: MmrConfig
    service: str
    machine_id: int
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    coordinator: Coordinator
    datastores: DatastoreRegistry
    ids: SnowflakeGenerator
    http: httpx.AsyncClient
    temp_dir: Path
    # Goes into every temp name (shared.storage.leftovers): machine, pid, process start.
    temp_tag: str = ""
    # The embedded default serves one homeserver whatever Host a request carries.
    single_homeserver: bool = False
    # How URL previews resolve host names (None: the system's); tests set a static one.
    resolver: Resolver | None = None
    # The machine-ID lease and membership heartbeat (shared/cluster/presence.py).
    presence: ClusterPresence | None = None
    # Token checks cached before this time (a SIGHUP reload) are asked again (shared/auth).
    token_cache_flushed_at: float = 0.0
    # Run first at close, newest first: what was built on first use.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _parts: dict[type, Part] = field(default_factory=dict)

    @cached_property
    def activity(self) -> ProcessActivity:
        """What this process is doing now (lease, tasks, queues), read by the metrics."""
        return ProcessActivity(self.service, self.machine_id, self.presence)

    @cached_property
    def federation(self) -> Federation:
        """This process's federation client and key store (one connection pool per process)."""
        made = Federation.build(self.config, self.coordinator)
        self.closers.append(made.close)
        return made

    @cached_property
    def access(self) -> AccessRecorder:
        """Records when media was last served, batched (`rt.access.record(origin, media_id)`)."""
        made = AccessRecorder(self.sessions, self.config.downloads.access_flush_seconds)
        self.closers.append(made.close)
        return made

    @cached_property
    def local_tokens(self) -> LocalTokenCache:
        """whoami answers this process believes for a few seconds without asking Redis
        (`shared.auth.tokens`); empty until the first token check starts it listening."""
        made = LocalTokenCache()
        self.closers.append(made.close)
        return made

    @cached_property
    def media_records(self) -> MediaRecordCache:
        """Recently read media records, forgotten when announced changed (`shared.media.records`);
        empty until a service starts it listening."""
        made = MediaRecordCache()
        self.closers.append(made.close)
        return made

    @cached_property
    def thumbnail_queue(self) -> WorkQueue:
        """New uploads whose thumbnails are made ahead of time (`shared.media.thumbnail_queue`)."""
        made = make_work_queue(self.config.redis.effective_url, thumbnail_queue.STREAM,
                               thumbnail_queue.GROUP)
        self.closers.append(made.close)
        return made

    @property
    def request_config(self) -> MmrConfig:
        """The config as the current request's homeserver (its Host) sees it: its per-domain
        file's sections over the main file's. Outside a request, the main config."""
        picked = homeserver_var.get()
        if picked != "-":
            return self.config.for_domain(picked)
        host = host_var.get()
        if not host or not self.config.domain_configs:
            return self.config
        if self.config.homeserver(host) is None:
            host = host.rsplit(":", 1)[0]
        return self.config.for_domain(host)

    def part(self, kind: type[P]) -> P:
        """The service-owned `kind` of this process, built by `kind.build(self)` on first use."""
        made = self._parts.get(kind)
        if made is None:
            made = self._parts[kind] = kind.build(self)
            self.closers.append(made.close)
        assert isinstance(made, kind)
        return made

    @property
    def runs_background_tasks(self) -> bool:
        """May this process run background tasks right now? Only machine 0 while it holds its
        lease: a standby machine 0, or one whose lease lapsed, may not (shared/cluster/)."""
        if self.machine_id != BACKGROUND_MACHINE_ID:
            return False
        return self.presence is None or self.presence.runs_background_tasks

    def homeserver_for_host(self, host: str) -> HomeserverConfig:
        """The homeserver a request's Host selects; UnknownHost when none matches."""
        if self.single_homeserver and self.config.homeservers:
            return self.config.homeservers[0]
        hs = self.config.homeserver(host) or self.config.homeserver(host.rsplit(":", 1)[0])
        if hs is None:
            raise UnknownHost(host)
        return hs

    def is_local_server(self, server_name: str) -> bool:
        return self.config.homeserver(server_name) is not None

    def canonical_server_name(self, server_name: str) -> str:
        """Our homeserver's configured spelling when `server_name` is ours in another case (rows
        are keyed by that spelling); any other name unchanged."""
        hs = self.config.homeserver(server_name)
        return hs.name if hs is not None else server_name

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()
        await self.http.aclose()
        await self.datastores.close()
        await self.coordinator.close()
        await self.engine.dispose()
        if self.presence is not None:
            await self.presence.close()


def _temp_dir(config: MmrConfig) -> Path:
    path = Path(config.repo.temp_path) if config.repo.temp_path else Path(tempfile.gettempdir())
    path.mkdir(parents=True, exist_ok=True)
    return path


async def build_runtime(
    config: MmrConfig,
    service: str,
    machine_id: int | None,
    single_homeserver: bool = False,
    claim: Claim | None = None,
) -> Runtime:
    """Join the cluster, then connect to everything; machine 0 migrates, the others wait for a
    usable schema.

    Joining claims `machine_id` (None: `MACHINE_ID=auto`), or takes over the `claim` that
    `mmr serve` made before starting the server.
    """
    presence = await join_cluster(config, service, machine_id, claim)
    try:
        return await _connect(config, service, presence, single_homeserver)
    except BaseException:
        await presence.close()
        raise


async def _connect(
    config: MmrConfig, service: str, presence: ClusterPresence, single_homeserver: bool
) -> Runtime:
    machine_id = presence.machine_id
    unused = config.unused_keys()
    if unused:
        log.warning("config: accepted but not used by mmr (see the README): %s", ", ".join(unused))
    if machine_id == BACKGROUND_MACHINE_ID:
        revision = await asyncio.to_thread(run_migrations, config.database.url)
        log.info("database schema at %s", revision)
    engine = create_engine(config.database, service)
    await wait_for_schema(engine, config.database.schema_wait_seconds)
    owner = TempOwner.current(machine_id)
    datastores = make_registry(config.datastores, owner.tag)
    temp_dir = _temp_dir(config)
    # What a killed predecessor of this machine left (spools, job folders, partial objects).
    file_roots = [store.local_root for store in datastores.all() if store.local_root is not None]
    await asyncio.to_thread(sweep_own_leftovers, temp_dir, file_roots, machine_id)
    return Runtime(
        config=config,
        service=service,
        machine_id=machine_id,
        engine=engine,
        sessions=create_sessionmaker(engine),
        coordinator=FailOpenCoordinator(
            VersionedCoordinator(make_coordinator(config.redis.effective_url)),
            observer=coordination_metrics(config.metrics.enabled, service, machine_id)),
        datastores=datastores,
        ids=SnowflakeGenerator(machine_id, guard=presence.lease.check_may_mint),
        http=httpx.AsyncClient(timeout=config.timeouts.client_server_timeout_seconds),
        temp_dir=temp_dir,
        temp_tag=owner.tag,
        single_homeserver=single_homeserver,
        presence=presence,
    )
