"""A process's claim on its MACHINE_ID: an expiring lease renewed by a heartbeat.

Rules (matrix-media-repo only documents them; here they are enforced):

* At start a process claims `machine:<id>`. When a live process holds it, the start is refused
  naming the holder, except for machine 0, which starts as a **hot standby**: it serves, but
  mints no IDs and runs no background task, and it tries to take the lease at every heartbeat, so
  it becomes machine 0 within one heartbeat of the holder's lease lapsing.
* `MACHINE_ID=auto` claims the first free ID of the service's range; 0 is never handed out.
* The lease is valid locally until `sent + leaseSeconds` of the last renewal that succeeded
  (`sent` being when the renewal left, so the local deadline is never later than Redis's). Past
  it, the process mints no IDs (`check_may_mint` raises a 503) and machine 0 stops its background
  tasks; a timer fires at that deadline, so a process resumed after a pause (SIGSTOP) stands down
  before its next heartbeat. When a renewal succeeds again (Redis back, the ID still vacant) it
  recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from shared.cluster.identity import ProcessInfo, describe_holder
from shared.config import ClusterConfig
from shared.coordination.leases import LeaseStore, LeaseStoreUnavailable
from shared.matrix.errors import ServiceUnavailable

log = logging.getLogger(__name__)

MACHINE_ZERO = 0
# The local deadline is kept this much earlier than Redis's (clock rates differ a little).
_SAFETY_FRACTION = 0.05
_STORE_ERRORS = (LeaseStoreUnavailable, TimeoutError)


class MachineIdInUse(Exception):
    """Another live process holds the MACHINE_ID this one was given."""

    def __init__(self, machine_id: int, holder: dict[str, Any]) -> None:
        super().__init__(
            f"MACHINE_ID {machine_id} is held by a live process ({describe_holder(holder)}); "
            "give this process another MACHINE_ID (or `auto`), or stop that one"
        )
        self.machine_id = machine_id
        self.holder = holder


class NoFreeMachineId(Exception):
    """`MACHINE_ID=auto` found every ID of the service's range held."""


def lease_name(machine_id: int) -> str:
    return f"machine:{machine_id}"


class MachineLease:
    """This process's machine-ID lease; `start()` claims it, `beat()` renews it."""

    def __init__(
        self,
        store: LeaseStore,
        info: ProcessInfo,
        config: ClusterConfig,
        requested: int | None,
        token: str | None = None,
    ) -> None:
        self._store = store
        self.info = info
        self._ttl = config.lease_seconds
        self._range = config.machine_id_range(info.service)
        self._requested = requested
        self.token = token or uuid.uuid4().hex
        self.machine_id = requested if requested is not None else -1
        self._valid_until = 0.0
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._held = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost.set()
        self.holder: dict[str, Any] | None = None  # who holds our ID when we do not
        # Started while the lease store was unreachable: runs unchecked, as matrix-media-repo
        # always does, until the first claim reaches the store (then the rules apply).
        self.unchecked = False

    # -- state --------------------------------------------------------------------------------

    @property
    def holds(self) -> bool:
        return self.unchecked or time.monotonic() < self._valid_until

    @property
    def role(self) -> str:
        """`holder`, `standby` (machine 0 waiting for the lease) or `lapsed` (lost it)."""
        if self.holds:
            return "holder"
        return "standby" if self.machine_id == MACHINE_ZERO else "lapsed"

    @property
    def seconds_left(self) -> float:
        return max(0.0, self._valid_until - time.monotonic())

    def check_may_mint(self) -> None:
        """Raise a 503 unless this process holds its machine-ID lease (see the module doc)."""
        if not self.holds:
            raise ServiceUnavailable(
                f"this process does not hold the lease on MACHINE_ID {self.machine_id} right now "
                "(coordination unreachable, or another process holds it); try again shortly",
                retry_after_seconds=max(1.0, self._ttl / 3),
            )

    async def wait_held(self) -> None:
        await self._held.wait()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    def record(self) -> dict[str, Any]:
        """The lease value: who holds it (shown to a process refused the same ID)."""
        return {"machine_id": self.machine_id, "service": self.info.service,
                "version": self.info.version, "host": self.info.host, "pid": self.info.pid,
                "started": self.info.started, "instance": self.info.instance}

    # -- claiming -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the lease; raise MachineIdInUse / NoFreeMachineId when the start must stop."""
        try:
            await self._start()
        except _STORE_ERRORS as exc:
            if self._requested is None:
                raise
            log.error("cannot reach Redis to claim MACHINE_ID %d (%r): running without a lease "
                      "until it can be claimed; duplicate MACHINE_IDs go undetected meanwhile",
                      self._requested, exc)
            self.machine_id = self._requested
            self.unchecked = True
            self._lost.clear()
            self._held.set()

    async def _start(self) -> None:
        if self._requested is None:
            await self._claim_first_free()
            return
        holder = await self._try(self._requested)
        if holder is None:
            return
        if self._requested == MACHINE_ZERO:
            self.holder = holder
            log.warning("machine 0 is held by %s: starting as a hot standby (no background "
                        "tasks, no new media) until its lease lapses", describe_holder(holder))
            return
        raise MachineIdInUse(self._requested, holder)

    async def _claim_first_free(self) -> None:
        if self._range is None:
            raise NoFreeMachineId(
                f"MACHINE_ID=auto needs a range for the {self.info.service} service in "
                "cluster.machineIdRanges")
        for candidate in self._range:
            self.machine_id = candidate
            if await self._try(candidate) is None:
                return
        raise NoFreeMachineId(
            f"MACHINE_ID=auto: every ID of the {self.info.service} range "
            f"{self._range.start}-{self._range.stop - 1} is held by a live process; widen "
            "cluster.machineIdRanges or stop a process")

    async def _try(self, machine_id: int) -> dict[str, Any] | None:
        sent = time.monotonic()
        self.machine_id = machine_id
        holder = await self._store.claim(lease_name(machine_id), self.token, self.record(),
                                         self._ttl)
        if holder is None:
            self._renewed(sent)
        return holder

    # -- heartbeat ----------------------------------------------------------------------------

    async def beat(self) -> None:
        """Renew (or, as a standby or after a lapse, try to take) the lease."""
        sent = time.monotonic()
        try:
            holder = await self._store.claim(lease_name(self.machine_id), self.token,
                                             self.record(), self._ttl)
        except _STORE_ERRORS as exc:
            if self.unchecked:
                return
            log.warning("could not renew the MACHINE_ID %d lease (%.1fs left): %r",
                        self.machine_id, self.seconds_left, exc)
            self._check_expired()
            return
        was_unchecked, self.unchecked = self.unchecked, False
        if holder is None:
            if not self.holds and not was_unchecked:
                log.warning("MACHINE_ID %d lease (re)taken: %s", self.machine_id,
                            "now machine 0" if self.machine_id == MACHINE_ZERO else "minting again")
            self.holder = None
            self._renewed(sent)
            return
        self.holder = holder
        if self.holds or was_unchecked:
            log.error("MACHINE_ID %d lease was taken by %s while this process held it: standing "
                      "down", self.machine_id, describe_holder(holder))
            self._valid_until = 0.0
        self._check_expired()

    def _renewed(self, sent: float) -> None:
        self._valid_until = sent + self._ttl * (1 - _SAFETY_FRACTION)
        self._lost.clear()
        self._held.set()
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        loop = asyncio.get_running_loop()
        # loop.time() is time.monotonic() for the default and uvloop loops.
        self._expiry_timer = loop.call_at(loop.time() + self.seconds_left, self._check_expired)

    def _check_expired(self) -> None:
        if self.holds or self._lost.is_set():
            return
        log.error("MACHINE_ID %d lease lapsed: no new media IDs%s until it is renewed",
                  self.machine_id, ", no background tasks" if self.machine_id == MACHINE_ZERO else "")
        self._held.clear()
        self._lost.set()

    def stop_timer(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None

    async def release(self) -> None:
        self.stop_timer()
        was_held = self.holds
        self._valid_until = 0.0
        self._held.clear()
        self._lost.set()
        if was_held or self._requested is None:
            with contextlib.suppress(*_STORE_ERRORS):
                await self._store.release(lease_name(self.machine_id), self.token)
