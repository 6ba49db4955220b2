"""admin HTTP routes: every admin module's router under both of matrix-media-repo's prefixes.

An admin module defines `router = admin_router()` (from `services.admin.audit`) with paths
relative to the admin prefix (`/purge/remote`), and is listed in `ADMIN_MODULES`; routes at
other paths (Synapse-compatible aliases) go in `OTHER_ROUTERS`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from services.admin import (
    archives_api,
    attributes_api,
    audit,
    compat_api,
    datastores_api,
    info_api,
    purge_api,
    quarantine_api,
    tasks_api,
    usage_api,
)

ADMIN_PREFIXES = ("/_matrix/media/unstable/admin", "/_matrix/media/unstable/io.t2bot.media/admin")

ADMIN_MODULES: list[APIRouter] = [
    audit.router, tasks_api.router, purge_api.router, quarantine_api.router,
    attributes_api.router, usage_api.router, info_api.router, datastores_api.router,
    archives_api.router,
]
OTHER_ROUTERS: list[APIRouter] = [
    purge_api.download_router, usage_api.synapse_router, compat_api.router,
]



def _mount(target: APIRouter, source: APIRouter, prefix: str = "") -> None:
    """Copy `source`'s routes into `target` under `prefix`, keeping their route class (the audit
    log) and leaving a flat route table that the deploy tests can read path by path."""
    for route in source.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"admin routers hold API routes only, not {route!r}")
        target.add_api_route(prefix + route.path, route.endpoint, methods=sorted(route.methods or ()),
                             name=route.name, route_class_override=type(route))


router = APIRouter()
for _prefix in ADMIN_PREFIXES:
    for _module_router in ADMIN_MODULES:
        _mount(router, _module_router, _prefix)
for _other in OTHER_ROUTERS:
    _mount(router, _other)
