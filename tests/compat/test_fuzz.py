"""Input that cannot confuse routing or crash a service, found by generating it.

* A hypothesis property over the path segments of every route every service mounts: any text,
  percent-encoded into one segment, is answered without a server error; a segment that is a
  server name or media ID outside the spec's grammar is 400/404, and never makes mmr contact
  anyone (no federation request, no 502).
* A schemathesis run over each service's OpenAPI document (the one FastAPI builds from its
  routes, plus the schema-only declarations of the lean download and upload routes; the admin
  service's with its admin and Synapse-compatible routes, called with the shared secret, a
  global admin), against the embedded default and a cluster node: 0 server errors.

Both are bounded (a few examples per operation) to keep the suite fast.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from mmr.embedded import all_routers, all_start_hooks
from mmr.services import service_module
from shared.config import parse_config
from shared.ids.media_id import is_valid_media_id, is_valid_server_name
from shared.services import SERVICES
from shared.web.lean import LeanRoute
from shared.web.schema_only import undocumented_lean_routes
from tests.conftest import SERVER_NAME, TEST_SECRET, cluster_raw_config, embedded_raw_config, new_bucket
from tests.infra.http_server import ServerThread
from tests.infra.seaweedfs import S3Server

HEADERS = {"Host": SERVER_NAME, "Authorization": f"Bearer {TEST_SECRET}"}
# Values that keep a request on this server: a remote name would (rightly) be fetched over
# federation, which only tests the network of the machine the suite runs on.
VALID = {"server_name": SERVER_NAME, "media_id": "abcdefABCDEF0123456789_-xyz", "file_name": "a.txt",
         "seed": "@alice:example.org"}
ID_PARAMS = ("server_name", "media_id")


@dataclass(frozen=True)
class Template:
    method: str
    path: str
    params: tuple[str, ...]


def _templates() -> list[Template]:
    found = []
    for router in all_routers():
        for route in router.routes:
            # Lean routes (downloads, uploads) too: they are not FastAPI routes, only declared
            # in the OpenAPI document (shared.web.schema_only).
            if isinstance(route, APIRoute | LeanRoute):
                params = tuple(re.findall(r"\{(\w+)(?::\w+)?\}", route.path))
                for method in sorted(route.methods):
                    found.append(Template(method, route.path, params))
    return found


def _admin(path: str) -> bool:
    # The path-segment property leaves the admin API out (its segments are user and room IDs,
    # not the media grammar); schemathesis covers it below, signed in as a global admin.
    return "/admin/" in path or path.startswith("/_synapse/")


TEMPLATES = [t for t in _templates() if t.params and not _admin(t.path)]


def _fill(template: Template, fuzzed: str, raw_segment: str) -> str:
    path = template.path
    for name in template.params:
        value = raw_segment if name == fuzzed else quote(VALID.get(name, "x"), safe="")
        path = re.sub(r"\{" + name + r"(?::\w+)?\}", value, path)
    return path


@pytest.fixture(scope="module", params=["embedded", "cluster"])
def fuzz_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    data = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    # Limits low enough that random bodies and sizes stay cheap; no per-IP limit (one client).
    extra: dict[str, Any] = {"uploads": {"maxBytes": 65536}, "urlPreviews": {"enabled": False}}
    if request.param == "embedded":
        raw = embedded_raw_config(data, **extra)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        raw = cluster_raw_config(data, request.getfixturevalue("pg_url"),
                                 request.getfixturevalue("redis_url"), s3, new_bucket(s3), **extra)
    from shared.web.app import make_app

    # With the start hooks, as `mmr serve` runs it: the admin API's purges and other tasks wait
    # for machine 0's task runner to finish them.
    app = make_app("embedded", all_routers(), config=parse_config(raw),
                   start_hooks=all_start_hooks())
    with ServerThread(app) as server:
        yield server.url


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: f"{t.method} {t.path}")
def test_any_path_segment_is_answered_without_a_server_error(
    fuzz_node: str, template: Template
) -> None:
    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(name=st.sampled_from(template.params), text=st.text(max_size=40),
           encode_all=st.booleans())
    def property_(name: str, text: str, encode_all: bool) -> None:
        decoded_ok = {"server_name": is_valid_server_name, "media_id": is_valid_media_id}
        valid = decoded_ok.get(name, lambda _: True)(text)
        # A valid remote server name would be fetched over federation: not this test's business.
        assume(not (name == "server_name" and valid and text != SERVER_NAME))
        # Everything encoded, or the raw characters a client might send unencoded.
        segment = quote(text, safe="" if encode_all else "/%:@")
        path = _fill(template, name, segment)
        with httpx.Client(base_url=fuzz_node, headers=HEADERS, timeout=30) as client:
            response = client.request(template.method, path, params={"width": 32, "height": 32})
        assert response.status_code < 500, (path, response.status_code, response.text)
        if name in ID_PARAMS and not valid and "/" not in text:
            assert response.status_code in (400, 404), (path, response.status_code, response.text)

    property_()


def _not_a_remote_name(doc: dict[str, Any]) -> dict[str, Any]:
    """Server names schemathesis generates: ours, or ones outside the grammar (see VALID)."""
    for operations in doc["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param["name"] == "server_name":
                    param["schema"] = {"anyOf": [{"const": SERVER_NAME},
                                                 {"type": "string", "pattern": r"[^A-Za-z0-9.\-]"}]}
    return doc


def _keep_local(case: Any) -> None:
    """Negative examples may still be valid remote names (e.g. `null`): make them ours."""
    params = case.path_parameters
    if params and "server_name" in params:
        name = str(params["server_name"])
        if is_valid_server_name(name) and name != SERVER_NAME:
            params["server_name"] = SERVER_NAME


def _service_schema(service: str) -> Any:
    config = parse_config(embedded_raw_config(Path("/nonexistent")))
    with warnings.catch_warnings():  # GET+HEAD routes share one operationId; harmless here
        warnings.simplefilter("ignore")
        doc = service_module(service).create_app(config=config).openapi()
    # The federation tester's job is contacting a server (discovery, then its /version): 502
    # for one that cannot be reached is its documented answer, and only tests this machine's
    # network. Everything else of the admin API is fuzzed. Methods in a fixed order: FastAPI
    # lists them from a set, whose order changes with the hash seed, and xdist workers must
    # collect the same tests in the same order.
    doc["paths"] = {path: dict(sorted(ops.items())) for path, ops in doc["paths"].items()
                    if "/admin/federation/test/" not in path}
    schema = schemathesis.openapi.from_dict(_not_a_remote_name(doc))
    return schema


SCHEMAS = {service: _service_schema(service) for service in SERVICES}


@pytest.mark.parametrize("service", SERVICES)
def test_every_lean_route_is_in_the_openapi_document(service: str) -> None:
    """Else schemathesis would silently stop fuzzing it (it only knows the document)."""
    config = parse_config(embedded_raw_config(Path("/nonexistent")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = service_module(service).create_app(config=config)
        assert undocumented_lean_routes(app) == []


def _run_schema(service: str) -> Any:
    @SCHEMAS[service].parametrize()
    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    def check(case: Any, fuzz_node: str) -> None:
        _keep_local(case)
        case.call_and_validate(base_url=fuzz_node, headers=HEADERS, checks=[not_a_server_error],
                               timeout=30)

    return check


test_upload_openapi = _run_schema("upload")
test_download_openapi = _run_schema("download")
test_thumbnail_openapi = _run_schema("thumbnail")
test_preview_openapi = _run_schema("preview")
test_admin_openapi = _run_schema("admin")
