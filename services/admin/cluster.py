"""`GET /_matrix/media/unstable/admin/cluster`: the live cluster and what is wrong with it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from shared.auth.users import UserInfo
from shared.cluster.membership import cluster_report
from shared.coordination.leases import LeaseStoreUnavailable
from shared.matrix.errors import Forbidden, ServiceUnavailable
from shared.web.deps import RuntimeDep, UserDep

router = APIRouter()


async def require_admin(user: UserDep) -> UserInfo:
    # TODO(admin-core): use the shared admin dependency once shared/auth/admin.py lands.
    if not user.is_admin:
        raise Forbidden("You must be an administrator to see the cluster")
    return user


@router.get("/_matrix/media/unstable/admin/cluster")
@router.get("/_matrix/media/unstable/io.t2bot.media/admin/cluster")
async def cluster_status(
    runtime: RuntimeDep, _admin: Annotated[UserInfo, Depends(require_admin)]
) -> dict[str, Any]:
    """Every live process (machine ID, service, version, host, pid, started, last heartbeat,
    config fingerprint) and the rules it breaks (version skew, no machine 0, ...)."""
    if runtime.presence is None:
        raise ServiceUnavailable("this process has not joined a cluster")
    try:
        members = await runtime.presence.members()
    except LeaseStoreUnavailable as exc:
        raise ServiceUnavailable(f"cannot read cluster membership from Redis: {exc}") from exc
    report = cluster_report(members)
    report["this_process"] = runtime.presence.member_record()
    return report
