"""`admin/federation/test/{serverName}`: discovery and the remote's federation `/version`."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from services.admin.answers import check_server_name, no_store
from services.admin.audit import admin_router
from shared.auth.admin import GlobalAdminDep
from shared.federation.client import FederationUnavailable
from shared.matrix.errors import MatrixError
from shared.web.deps import RuntimeDep

router = admin_router()


@router.get("/federation/test/{server_name}")
async def federation_test(server_name: str, rt: RuntimeDep, _caller: GlobalAdminDep) -> JSONResponse:
    check_server_name(server_name)
    client = rt.federation.client
    try:
        target = await client.discovery.resolve(server_name)
        status, body = await client.json_request(server_name, "/_matrix/federation/v1/version")
    except FederationUnavailable as exc:
        raise MatrixError(502, "M_UNKNOWN", str(exc)) from exc
    if status != 200 or not isinstance(body, dict):
        raise MatrixError(502, "M_UNKNOWN", f"{server_name} answered {status} to /version")
    host = target.tls_name if ":" not in target.tls_name else f"[{target.tls_name}]"
    return no_store({
        "base_url": f"https://{host}:{target.port}",
        "hostname": target.host_header,
        "versions_response": body,
    })

