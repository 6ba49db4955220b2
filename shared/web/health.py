"""`/healthz` (the process is alive), `/readyz` (it can reach what it needs), version."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from shared.metrics.record import dependency_error
from shared.runtime import Runtime
from shared.version import mmr_version
from shared.web.deps import RuntimeDep

log = logging.getLogger(__name__)
router = APIRouter()
READY_TIMEOUT_SECONDS = 5.0


@router.get("/healthz")
async def healthz(runtime: RuntimeDep) -> dict[str, object]:
    return {"status": "ok", "service": runtime.service, "machine_id": runtime.machine_id}


async def _check(name: str, check: object, runtime: Runtime | None = None) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check, READY_TIMEOUT_SECONDS)  # type: ignore[arg-type]
        return name, "ok"
    except Exception as exc:
        log.warning("readiness check %s failed: %s", name, exc)
        dependency_error(runtime, exc)
        return name, f"failed: {type(exc).__name__}"


async def _database_ok(runtime: RuntimeDep) -> None:
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks = [
        _check("database", _database_ok(runtime), runtime),
        _check("coordination", runtime.coordinator.check_ready(), runtime),
        *(_check(f"datastore:{d.id}", d.check_ready(), runtime) for d in runtime.datastores.all()),
    ]
    results = dict(await asyncio.gather(*checks))
    ready = all(v == "ok" for v in results.values())
    if runtime.presence is not None:
        results["machine_id_lease"] = "ok" if runtime.presence.lease.holds else runtime.presence.lease.role
    # Coordination (Redis) and the lease only degrade a process: locks and caches fail open, so
    # the ingress must keep sending it traffic (a Redis blip must not empty every pool).
    essential = all(v == "ok" for k, v in results.items()
                    if k not in ("coordination", "machine_id_lease"))
    status = "ok" if ready and results.get("machine_id_lease", "ok") == "ok" else (
        "degraded" if essential else "unavailable")
    return JSONResponse({"ready": essential, "status": status, "checks": results},
                        status_code=200 if essential else 503)


@router.get("/_matrix/media/version")
async def media_version() -> JSONResponse:
    """matrix-media-repo's shape, so its operators' scripts read it."""
    return JSONResponse({"Version": mmr_version(), "GitCommit": "", "unstable_features": {}},
                        headers={"Cache-Control": "no-store"})
