"""The route table of `deploy/routes.yaml`, as data: which service pool serves which path.

The nginx template and the Kubernetes Ingress are generated from it, `mmr cluster up` routes by
it, and the tests check routers and services against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
ROUTES_PATH = DEPLOY_DIR / "routes.yaml"
SERVICES = ("upload", "download", "thumbnail", "preview", "admin")
PathType = Literal["Exact", "Prefix"]
_ALTERNATIVES = re.compile(r"\{([^{}]*,[^{}]*)\}")


class RouteTableError(ValueError):
    """deploy/routes.yaml is missing or malformed; the message names the bad entry."""


@dataclass(frozen=True)
class Route:
    """One rule: `Prefix` matches whole path segments, `Exact` the whole path."""

    path_type: PathType
    path: str
    service: str


def expand(pattern: str) -> list[str]:
    """`/a/{x,y}/b` -> `/a/x/b`, `/a/y/b` (every group, left to right)."""
    match = _ALTERNATIVES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [path for choice in match.group(1).split(",") for path in expand(head + choice + tail)]


def _parse_entry(entry: object) -> list[Route]:
    if not isinstance(entry, dict) or set(entry) not in ({"prefix", "service"}, {"exact", "service"}):
        raise RouteTableError(f"a route is `{{prefix|exact: PATH, service: NAME}}`, got {entry!r}")
    service = entry["service"]
    if service not in SERVICES:
        raise RouteTableError(f"unknown service {service!r} in {entry!r}")
    path_type: PathType = "Prefix" if "prefix" in entry else "Exact"
    pattern = str(entry.get("prefix", entry.get("exact")))
    paths = expand(pattern)
    for path in paths:
        if not path.startswith("/") or path.endswith("/") or "{" in path:
            raise RouteTableError(f"bad path {path!r} (from {pattern!r})")
    return [Route(path_type, path, service) for path in paths]


def load_routes(path: Path = ROUTES_PATH) -> tuple[Route, ...]:
    """Every rule of the table, braces expanded; raises `RouteTableError` naming a bad entry."""
    if not path.is_file():
        raise RouteTableError(f"no route table at {path} (it ships with the mmr source tree)")
    document = yaml.safe_load(path.read_text()) or {}
    routes = [route for entry in document.get("routes", []) for route in _parse_entry(entry)]
    seen: dict[tuple[str, str], str] = {}
    for route in routes:
        key = (route.path_type, route.path)
        if key in seen:
            raise RouteTableError(f"{route.path_type} {route.path} is listed twice")
        seen[key] = route.service
    return tuple(routes)


@cache
def routes() -> tuple[Route, ...]:
    """The table in deploy/routes.yaml, read once."""
    return load_routes()


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def matches(route: Route, path: str) -> bool:
    """Kubernetes Ingress semantics: Exact is the whole path; Prefix is whole segments."""
    if route.path_type == "Exact":
        return path == route.path
    prefix = _segments(route.path)
    return _segments(path)[: len(prefix)] == prefix


def service_for(path: str, table: tuple[Route, ...] | None = None) -> str | None:
    """The service `path` is routed to: the longest matching rule, Exact before Prefix on a tie;
    None when no rule matches."""
    candidates = [r for r in (routes() if table is None else table) if matches(r, path)]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: (len(r.path), r.path_type == "Exact"))
    return best.service


def _version_variants(path: str) -> list[str]:
    """`path` under every media API version, so a version missing from a router shows."""
    match = re.match(r"^/_matrix/media/(r0|v1|v3|unstable)/", path)
    if match is None:
        return [path]
    rest = path[match.end():]
    return [f"/_matrix/media/{v}/{rest}" for v in ("r0", "v1", "v3", "unstable")]


def sample_paths(table: tuple[Route, ...] | None = None) -> list[str]:
    """Request paths that probe every rule, its edges, and paths that belong to no one."""
    paths: list[str] = []
    for route in routes() if table is None else table:
        for path in _version_variants(route.path):
            paths += [path, path + "/x"]
            if route.path_type == "Prefix":
                paths.append(path + "/localhost/abc123/name.png")
                paths.append(path + "s")  # a longer segment is not the same prefix
    paths += ["/_matrix/media/version", "/_matrix/mediax", "/_matrix/client/v3/sync", "/", "/x"]
    return list(dict.fromkeys(paths))
