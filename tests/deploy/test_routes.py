"""deploy/routes.yaml, the one route table: its syntax and how a path picks its rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmr.deploy.routes import RouteTableError, expand, load_routes, matches, service_for
from tests.deploy.routing import ROUTES


def _table(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text("routes:\n" + lines)
    return path


def test_braces_expand_to_one_rule_per_alternative() -> None:
    assert expand("/_matrix/{media/v3,client/v1/media}/x{,/all}") == [
        "/_matrix/media/v3/x", "/_matrix/media/v3/x/all",
        "/_matrix/client/v1/media/x", "/_matrix/client/v1/media/x/all"]


def test_adding_a_route_is_one_line(tmp_path: Path) -> None:
    table = load_routes(_table(tmp_path, "  - {prefix: /_matrix/media, service: admin}\n"
                                         "  - {exact: /_matrix/media/v3/new, service: upload}\n"))
    assert service_for("/_matrix/media/v3/new", table) == "upload"
    assert service_for("/_matrix/media/v3/new/x", table) == "admin"


def test_prefixes_match_whole_segments_and_the_longest_wins() -> None:
    assert service_for("/_matrix/media/v3/upload") == "upload"
    assert service_for("/_matrix/media/v3/upload/localhost/abc") == "upload"
    assert service_for("/_matrix/media/v3/uploads") == "admin"
    assert service_for("/_matrix/mediax") is None


def test_a_regex_rule_applies_only_where_no_prefix_rule_does() -> None:
    regexes = [r for r in ROUTES if r.path_type == "Regex"]
    assert regexes
    for route in regexes:
        assert matches(route, route.example)
        others = [r for r in ROUTES if r.path_type != "Regex" and matches(r, route.example)]
        assert others == [], f"{route.example} is also matched by {others}: order would matter"
    assert service_for("/_synapse/admin/v1/user/@a:localhost/media/quarantine") == "admin"
    assert service_for("/_synapse/admin/v1/user/@a:localhost/login") is None


@pytest.mark.parametrize("line, message", [
    ("  - {prefix: /x, service: nobody}\n", "unknown service"),
    ("  - {prefix: x, service: admin}\n", "bad path"),
    ("  - {prefix: /x/, service: admin}\n", "bad path"),
    ("  - {prefix: /x, exact: /y, service: admin}\n", "a route is"),
    ("  - {regex: '/x/[^/]+', service: admin}\n", "needs an `example`"),
    ("  - {regex: '/x/(', example: /x/, service: admin}\n", "bad regex"),
    ("  - {exact: /x, service: admin}\n  - {exact: /x, service: upload}\n", "listed twice"),
])
def test_a_malformed_table_is_refused_naming_the_entry(
    tmp_path: Path, line: str, message: str
) -> None:
    with pytest.raises(RouteTableError, match=message):
        load_routes(_table(tmp_path, line))


def test_the_synapse_admin_api_is_ours_only_where_it_is_about_media() -> None:
    assert service_for("/_synapse/admin/v1/media/localhost/abc") == "admin"
    assert service_for("/_synapse/admin/v1/purge_media_cache") == "admin"
    assert service_for("/_synapse/admin/v1/users/@a:localhost") is None
    assert service_for("/_synapse/admin/v2/users") is None
