"""The one routing table of an mmr cluster, as data: which service pool serves which path.

docs/ARCHITECTURE.md, deploy/nginx/mmr.conf.template and deploy/k8s/ingress.yaml each write it
out by hand; the tests in this folder check both routers against this table, and the table
against the routes each service really mounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PathType = Literal["Exact", "Prefix", "ImplementationSpecific"]
SERVICES = ("upload", "download", "thumbnail", "preview", "admin")


@dataclass(frozen=True)
class Route:
    """A Kubernetes Ingress path rule: `Prefix` matches whole path segments;
    `ImplementationSpecific` is an anchored regular expression (ingress-nginx `use-regex`),
    with `example` a path it matches."""

    path_type: PathType
    path: str
    service: str
    example: str = ""


def _each(path_type: PathType, template: str, versions: tuple[str, ...], service: str) -> list[Route]:
    return [Route(path_type, template.format(v=v), service) for v in versions]


CLIENT_ADMIN_VERSIONS = ("r0", "v3", "unstable", "unstable/io.t2bot.media")

ROUTES: tuple[Route, ...] = (
    # upload
    *_each("Prefix", "/_matrix/media/{v}/upload", ("r0", "v1", "v3"), "upload"),
    Route("Exact", "/_matrix/media/v1/create", "upload"),
    Route("Exact", "/_matrix/client/v1/media/config", "upload"),
    *_each("Exact", "/_matrix/media/{v}/config", ("r0", "v3"), "upload"),
    # download
    Route("Prefix", "/_matrix/client/v1/media/download", "download"),
    Route("Prefix", "/_matrix/federation/v1/media/download", "download"),
    *_each("Prefix", "/_matrix/media/{v}/download", ("r0", "v1", "v3"), "download"),
    # thumbnail
    Route("Prefix", "/_matrix/client/v1/media/thumbnail", "thumbnail"),
    Route("Prefix", "/_matrix/federation/v1/media/thumbnail", "thumbnail"),
    *_each("Prefix", "/_matrix/media/{v}/thumbnail", ("r0", "v1", "v3"), "thumbnail"),
    # preview
    Route("Exact", "/_matrix/client/v1/media/preview_url", "preview"),
    *_each("Exact", "/_matrix/media/{v}/preview_url", ("r0", "v3"), "preview"),
    # admin: the admin APIs, and everything else of the three media trees
    Route("Prefix", "/_matrix/media/unstable/admin", "admin"),
    Route("Prefix", "/_matrix/media/unstable/io.t2bot.media/admin", "admin"),
    Route("Prefix", "/_matrix/media", "admin"),
    Route("Prefix", "/_matrix/client/v1/media", "admin"),
    Route("Prefix", "/_matrix/federation/v1/media", "admin"),
    # admin: Synapse's media admin API and matrix-media-repo's client aliases, answered from
    # mmr's data (the homeserver keeps the rest of /_synapse and /_matrix/client)
    Route("Prefix", "/_synapse/admin/v1/media", "admin"),
    Route("Exact", "/_synapse/admin/v1/purge_media_cache", "admin"),
    Route("Exact", "/_synapse/admin/v1/statistics/users/media", "admin"),
    Route("ImplementationSpecific", r"^/_synapse/admin/v1/(room|user)/[^/]+/media/quarantine$", "admin",
          example="/_synapse/admin/v1/room/!abc:example.org/media/quarantine"),
    *_each("Exact", "/_matrix/client/{v}/admin/purge_media_cache", CLIENT_ADMIN_VERSIONS, "admin"),
    *_each("Prefix", "/_matrix/client/{v}/admin/quarantine_media", CLIENT_ADMIN_VERSIONS, "admin"),
)


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def matches(route: Route, path: str) -> bool:
    """Kubernetes Ingress semantics: Exact is the whole path; Prefix is whole segments."""
    if route.path_type == "Exact":
        return path == route.path
    if route.path_type == "ImplementationSpecific":
        return re.match(route.path, path) is not None
    prefix = _segments(route.path)
    return _segments(path)[: len(prefix)] == prefix


def service_for(path: str, routes: tuple[Route, ...] = ROUTES) -> str | None:
    """The service an Ingress sends `path` to: the longest matching path, Exact before Prefix
    on a tie (the Ingress spec's precedence); None when no rule matches."""
    candidates = [r for r in routes if matches(r, path)]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: (len(r.path.rstrip("/")), r.path_type == "Exact"))
    return best.service


def _version_variants(path: str) -> list[str]:
    """`path` under every media API version, so a version missing from a router shows."""
    match = re.match(r"^/_matrix/media/(r0|v1|v3|unstable)/", path)
    if match is None:
        return [path]
    rest = path[match.end():]
    return [f"/_matrix/media/{v}/{rest}" for v in ("r0", "v1", "v3", "unstable")]


def sample_paths(routes: tuple[Route, ...] = ROUTES) -> list[str]:
    """Request paths that probe every rule, its edges, and paths that belong to no one."""
    paths: list[str] = []
    for route in routes:
        if route.path_type == "ImplementationSpecific":
            paths += [route.example, route.example + "/x", route.example.replace("/media/", "/medias/")]
            continue
        for path in _version_variants(route.path):
            paths += [path, path + "/x"]
            if route.path_type == "Prefix":
                paths.append(path + "/localhost/abc123/name.png")
                paths.append(path + "s")  # a longer segment is not the same prefix
    paths += ["/_matrix/media/version", "/_matrix/mediax", "/_matrix/client/v3/sync", "/", "/x",
              "/_synapse/admin/v1/rooms/!abc:example.org", "/_synapse/admin/v1/users/@a:b",
              "/_synapse/admin/v1/user/@a:example.org/media"]
    return list(dict.fromkeys(paths))
