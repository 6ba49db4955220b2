"""Joining the cluster: claim the machine-ID lease, check versions, heartbeat, publish membership.

`join_cluster(...)` is called once per process before it serves (by `mmr serve`, so a refusal is
one `mmr:` line, or by `build_runtime` when nothing joined yet). The returned `ClusterPresence`
lives as long as the process: its heartbeat renews the lease and refreshes the membership record
every `cluster.heartbeatSeconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from shared.cluster.identity import (
    ProcessInfo,
    cluster_prefix,
    config_fingerprint,
    describe_holder,
    file_datastores,
)
from shared.cluster.machine_lease import MACHINE_ZERO, MachineLease, lease_name
from shared.cluster.versions import VersionRefused, compatibility_problem
from shared.config import MmrConfig
from shared.coordination.leases import (
    LeaseStore,
    LeaseStoreUnavailable,
    make_lease_store,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A lease claimed before the server's event loop started, handed over to it by `token`."""

    machine_id: int
    token: str
    info: ProcessInfo


class ClusterPresence:
    """This process's place in the cluster."""

    def __init__(self, store: LeaseStore, lease: MachineLease, config: MmrConfig) -> None:
        self.store = store
        self.lease = lease
        self.info = lease.info
        self._config = config
        self._interval = config.cluster.heartbeat_interval
        self._ttl = config.cluster.lease_seconds
        self._fingerprint = config_fingerprint(config)
        self._file_datastores = file_datastores(config)
        self._last_heartbeat = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def machine_id(self) -> int:
        return self.lease.machine_id

    @property
    def runs_background_tasks(self) -> bool:
        """Machine 0 that holds its lease: the one process allowed to run background tasks."""
        return self.lease.machine_id == MACHINE_ZERO and self.lease.holds

    def member_record(self) -> dict[str, Any]:
        return {
            **self.lease.record(),
            "role": self.lease.role,
            "last_heartbeat": self._last_heartbeat,
            "lease_seconds_left": round(self.lease.seconds_left, 1),
            "config": self._fingerprint,
            "file_datastores": self._file_datastores,
        }

    async def start(self) -> None:
        await self.lease.start()
        try:
            await self._check_version()
        except BaseException:
            await self.lease.release()
            raise
        await self._publish()
        self._task = asyncio.create_task(self._heartbeat(), name="cluster-heartbeat")

    async def _check_version(self) -> None:
        if self.runs_background_tasks:
            return
        try:
            zero = await self.store.holder(lease_name(MACHINE_ZERO))
        except LeaseStoreUnavailable as exc:
            log.warning("could not read machine 0's version (%r); starting anyway", exc)
            return
        if zero is None or "version" not in zero:
            if zero is not None:
                log.warning("machine 0 is %s; not checking versions", describe_holder(zero))
            return
        problem = compatibility_problem(self.info.version, str(zero["version"]),
                                        i_am_machine_zero=self.machine_id == MACHINE_ZERO)
        if problem is not None:
            raise VersionRefused(problem)

    async def _publish(self) -> None:
        self._last_heartbeat = time.time()
        try:
            await self.store.publish_member(self.info.instance, self.member_record(), self._ttl)
        except LeaseStoreUnavailable as exc:
            log.warning("could not publish cluster membership: %r", exc)

    async def beat(self) -> None:
        await self.lease.beat()
        await self._publish()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.beat()
            except Exception:
                log.exception("cluster heartbeat failed")

    async def detach(self) -> Claim:
        """Stop this object without releasing the lease, so that another event loop (the
        server's) can take it over by its token before it expires."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.lease.stop_timer()
        await self.store.close()
        return Claim(self.machine_id, self.lease.token, self.info)

    async def members(self) -> list[dict[str, Any]]:
        return await self.store.members()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.lease.release()
        with contextlib.suppress(LeaseStoreUnavailable):
            await self.store.remove_member(self.info.instance)
        await self.store.close()


async def open_lease_store(config: MmrConfig) -> LeaseStore:
    """The lease store of the cluster `config` describes (in-process when Redis is off)."""
    url = config.redis.effective_url
    prefix = await cluster_prefix(config) if url else "local"
    return make_lease_store(url, prefix)


async def join_cluster(
    config: MmrConfig, service: str, requested: int | None, claim: Claim | None = None
) -> ClusterPresence:
    """Claim this process's machine ID (None: `auto`), or take over `claim`, and start the
    heartbeat.

    Raises MachineIdInUse, NoFreeMachineId or VersionRefused when the process must not start.
    """
    store = await open_lease_store(config)
    if claim is None:
        lease = MachineLease(store, ProcessInfo(service), config.cluster, requested)
    else:
        lease = MachineLease(store, claim.info, config.cluster, claim.machine_id, token=claim.token)
    presence = ClusterPresence(store, lease, config)
    try:
        await presence.start()
    except BaseException:
        await store.close()
        raise
    return presence


async def claim_machine_id(config: MmrConfig, service: str, requested: int | None) -> Claim:
    """Join and detach at once: what `mmr serve` does before starting its server."""
    presence = await join_cluster(config, service, requested)
    return await presence.detach()
