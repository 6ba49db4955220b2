"""`GET /_matrix/media/unstable/admin/cluster`: the live cluster and what is wrong with it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shared.auth.admin import GlobalAdminDep
from shared.cluster.membership import cluster_report
from shared.coordination.leases import LeaseStoreUnavailable
from shared.matrix.errors import ServiceUnavailable
from shared.runtime import Runtime
from shared.web.deps import RuntimeDep

router = APIRouter()


@router.get("/_matrix/media/unstable/admin/cluster")
@router.get("/_matrix/media/unstable/io.t2bot.media/admin/cluster")
async def cluster_status(runtime: RuntimeDep, _admin: GlobalAdminDep) -> dict[str, Any]:
    """Every live process (machine ID, service, version, host, pid, started, last heartbeat,
    config fingerprint) and the rules it breaks (version skew, no machine 0, ...)."""
    return await read_cluster(runtime)


async def read_cluster(runtime: Runtime) -> dict[str, Any]:
    """The cluster report (also the console's Cluster page); 503 when it cannot be read."""
    if runtime.presence is None:
        raise ServiceUnavailable("this process has not joined a cluster")
    try:
        members = await runtime.presence.members()
    except LeaseStoreUnavailable as exc:
        raise ServiceUnavailable(f"cannot read cluster membership from Redis: {exc}") from exc
    report = cluster_report(members)
    report["this_process"] = runtime.presence.member_record()
    return report
