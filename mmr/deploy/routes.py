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

from shared.services import SERVICES

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
ROUTES_PATH = DEPLOY_DIR / "routes.yaml"
PathType = Literal["Exact", "Prefix", "Regex"]
_ALTERNATIVES = re.compile(r"\{([^{}]*,[^{}]*)\}")


class RouteTableError(ValueError):
    """deploy/routes.yaml is missing or malformed; the message names the bad entry."""


@dataclass(frozen=True)
class Route:
    """One rule: `Prefix` matches whole path segments, `Exact` the whole path, `Regex` (for an
    ID in the middle of a path) the whole path against `path`; `example` is a path it matches."""

    path_type: PathType
    path: str
    service: str
    example: str = ""


def expand(pattern: str) -> list[str]:
    """`/a/{x,y}/b` -> `/a/x/b`, `/a/y/b` (every group, left to right)."""
    match = _ALTERNATIVES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [path for choice in match.group(1).split(",") for path in expand(head + choice + tail)]


_KINDS: dict[str, PathType] = {"prefix": "Prefix", "exact": "Exact", "regex": "Regex"}


def _parse_regex(entry: dict[str, object], service: str) -> list[Route]:
    pattern, example = str(entry["regex"]), str(entry.get("example", ""))
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise RouteTableError(f"bad regex {pattern!r}: {exc}") from exc
    if not pattern.startswith("/") or compiled.fullmatch(example) is None:
        raise RouteTableError(f"a regex route starts with / and needs an `example` it matches: "
                              f"{entry!r}")
    return [Route("Regex", pattern, service, example)]


def _parse_entry(entry: object) -> list[Route]:
    kinds = set(entry) & set(_KINDS) if isinstance(entry, dict) else set()
    allowed = {"service", *kinds, *(("example",) if kinds == {"regex"} else ())}
    if not isinstance(entry, dict) or len(kinds) != 1 or not set(entry) <= allowed:
        raise RouteTableError("a route is `{prefix|exact: PATH, service: NAME}` or "
                              f"`{{regex: RE, example: PATH, service: NAME}}`, got {entry!r}")
    service = entry.get("service")
    if service not in SERVICES:
        raise RouteTableError(f"unknown service {service!r} in {entry!r}")
    (kind,) = kinds
    if kind == "regex":
        return _parse_regex(entry, str(service))
    pattern = str(entry[kind])
    paths = expand(pattern)
    for path in paths:
        if not path.startswith("/") or path.endswith("/") or "{" in path:
            raise RouteTableError(f"bad path {path!r} (from {pattern!r})")
    return [Route(_KINDS[kind], path, str(service)) for path in paths]


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
    if route.path_type == "Regex":
        return re.fullmatch(route.path, path) is not None
    prefix = _segments(route.path)
    return _segments(path)[: len(prefix)] == prefix


def service_for(path: str, table: tuple[Route, ...] | None = None) -> str | None:
    """The service `path` is routed to: the longest matching Exact or Prefix rule (Exact first
    on a tie), else the first matching Regex rule; None when no rule matches."""
    rules = routes() if table is None else table
    candidates = [r for r in rules if r.path_type != "Regex" and matches(r, path)]
    if candidates:
        best = max(candidates, key=lambda r: (len(r.path), r.path_type == "Exact"))
        return best.service
    return next((r.service for r in rules if r.path_type == "Regex" and matches(r, path)), None)


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
        if route.path_type == "Regex":
            paths += [route.example, route.example + "x", route.example + "/x"]
            continue
        for path in _version_variants(route.path):
            paths += [path, path + "/x"]
            if route.path_type == "Prefix":
                paths.append(path + "/localhost/abc123/name.png")
                paths.append(path + "s")  # a longer segment is not the same prefix
    paths += ["/_matrix/media/version", "/_matrix/mediax", "/_matrix/client/v3/sync", "/", "/x"]
    return list(dict.fromkeys(paths))
