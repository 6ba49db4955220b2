"""`/healthz` (the process is alive), `/readyz` (it can reach what it needs), version."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from shared.version import mmr_version
from shared.web.deps import RuntimeDep

log = logging.getLogger(__name__)
router = APIRouter()
READY_TIMEOUT_SECONDS = 5.0


@router.get("/healthz")
async def healthz(runtime: RuntimeDep) -> dict[str, object]:
    return {"status": "ok", "service": runtime.service, "machine_id": runtime.machine_id}


async def _check(name: str, check: object) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check, READY_TIMEOUT_SECONDS)  # type: ignore[arg-type]
        return name, "ok"
    except Exception as exc:
        log.warning("readiness check %s failed: %s", name, exc)
        return name, f"failed: {type(exc).__name__}"


async def _database_ok(runtime: RuntimeDep) -> None:
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks = [
        _check("database", _database_ok(runtime)),
        _check("coordination", runtime.coordinator.check_ready()),
        *(_check(f"datastore:{d.id}", d.check_ready()) for d in runtime.datastores.all()),
    ]
    results = dict(await asyncio.gather(*checks))
    ready = all(v == "ok" for v in results.values())
    return JSONResponse({"ready": ready, "checks": results}, status_code=200 if ready else 503)


@router.get("/_matrix/media/version")
async def media_version() -> JSONResponse:
    """matrix-media-repo's shape, so its operators' scripts read it."""
    return JSONResponse({"Version": mmr_version(), "GitCommit": "", "unstable_features": {}},
                        headers={"Cache-Control": "no-store"})
