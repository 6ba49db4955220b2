"""The foundation's vertical slice over real HTTP: upload, download, and every kind of bad input.

Each test runs on the embedded default (SQLite, files, in-process) and on a cluster node
(PostgreSQL, Redis, SeaweedFS S3).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from shared.config import parse_config
from shared.db.models import MediaRow
from tests.conftest import RunningMmr, embedded_raw_config, serve_all

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["embedded", "cluster_node"])
def node(request: pytest.FixtureRequest) -> RunningMmr:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


async def upload(client: httpx.AsyncClient, data: bytes, content_type: str | None = "text/plain",
                 filename: str | None = None) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    params = {"filename": filename} if filename else {}
    return await client.post("/_matrix/media/v3/upload", content=data, headers=headers, params=params)


def media_path(mxc: str) -> str:
    return mxc.removeprefix("mxc://")


async def media_rows(runtime_for: object, node: RunningMmr) -> int:
    runtime = await runtime_for(node.config)  # type: ignore[operator]
    async with runtime.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(MediaRow))).scalar())


def leftover_temp_files(node: RunningMmr) -> list[Path]:
    temp = node.data_dir / "tmp"
    return list(temp.iterdir()) if temp.exists() else []


async def test_upload_then_download_is_byte_exact(node: RunningMmr) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    async with node.client() as client:
        response = await upload(client, data, "application/x-custom; v=1", "report.bin")
        assert response.status_code == 200, response.text
        mxc = response.json()["content_uri"]
        assert mxc.startswith("mxc://localhost/")
        got = await client.get(f"/_matrix/client/v1/media/download/{media_path(mxc)}")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "application/x-custom; v=1"
    assert got.headers["content-disposition"] == "attachment; filename=report.bin"
    assert got.headers["content-security-policy"].startswith("sandbox;")
    assert got.headers["cross-origin-resource-policy"] == "cross-origin"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["access-control-allow-origin"] == "*"


async def test_missing_content_type_defaults_to_octet_stream(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        mxc = (await upload(client, b"raw bytes here", content_type=None)).json()["content_uri"]
        got = await client.get(f"/_matrix/client/v1/media/download/{media_path(mxc)}")
    assert got.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize(("content_type", "disposition"), [
    ("image/png", "inline"), ("Text/Plain; charset=utf-8", "inline"), ("text/html", "attachment"),
    ("image/svg+xml", "attachment"), ("application/pdf", "attachment"),
])
async def test_disposition_follows_the_inline_list(
    embedded: RunningMmr, content_type: str, disposition: str
) -> None:
    async with embedded.client() as client:
        mxc = (await upload(client, b"0123456789", content_type)).json()["content_uri"]
        got = await client.get(f"/_matrix/client/v1/media/download/{media_path(mxc)}")
    assert got.headers["content-disposition"] == disposition


@pytest.mark.parametrize(("name", "expected"), [
    ("ascii.txt", "filename=ascii.txt"),
    ("name with spaces.txt", 'filename="name with spaces.txt"'),
    ("name;with;semicolons.txt", 'filename="name;with;semicolons.txt"'),
    ("naïve résumé.txt", "filename*=utf-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt"),
    ("bad\x07\nname.txt", "filename=badname.txt"),
])
async def test_filenames_are_encoded_per_rfc_6266(
    embedded: RunningMmr, name: str, expected: str
) -> None:
    async with embedded.client() as client:
        mxc = (await upload(client, b"some bytes", "text/plain", name)).json()["content_uri"]
        got = await client.get(f"/_matrix/client/v1/media/download/{media_path(mxc)}")
    assert got.headers["content-disposition"] == f"inline; {expected}"


async def test_the_filename_in_the_path_wins(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        mxc = (await upload(client, b"some bytes", "text/plain", "a.txt")).json()["content_uri"]
        got = await client.get(f"/_matrix/client/v1/media/download/{media_path(mxc)}/b.txt")
    assert got.headers["content-disposition"] == "inline; filename=b.txt"


async def test_identical_content_is_stored_once(embedded: RunningMmr) -> None:
    data = os.urandom(100_000)
    async with embedded.client() as client:
        first = (await upload(client, data)).json()["content_uri"]
        second = (await upload(client, data)).json()["content_uri"]
    assert first != second
    stored = [p for p in (embedded.data_dir / "media").rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert stored[0].name == hashlib.sha256(data).hexdigest()


async def test_legacy_routes_serve_media_uploaded_before_the_freeze(tmp_path: Path) -> None:
    config = parse_config(embedded_raw_config(tmp_path, repo={"freezeUnauthenticatedMedia": False}))
    with serve_all(config) as server:
        async with RunningMmr(server.url, config, tmp_path).client() as client:
            mxc = (await upload(client, b"legacy bytes")).json()["content_uri"]
            for version in ("r0", "v1", "v3"):
                got = await client.get(f"/_matrix/media/{version}/download/{media_path(mxc)}",
                                       headers={"Authorization": ""})
                assert got.status_code == 200
                assert got.content == b"legacy bytes"


async def test_frozen_media_is_not_served_on_legacy_routes(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        mxc = (await upload(client, b"new media")).json()["content_uri"]
    async with embedded.client(token=None) as anonymous:
        got = await anonymous.get(f"/_matrix/media/v3/download/{media_path(mxc)}")
    assert got.status_code == 404
    assert got.json()["errcode"] == "M_NOT_FOUND"


async def test_head_returns_headers_only(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        mxc = (await upload(client, b"12345")).json()["content_uri"]
        got = await client.head(f"/_matrix/client/v1/media/download/{media_path(mxc)}")
    assert got.status_code == 200
    assert got.headers["content-length"] == "5"
    assert got.content == b""


async def test_upload_over_the_limit_by_content_length_is_refused_and_nothing_stored(
    node: RunningMmr, runtime_for: object
) -> None:
    limit = node.config.uploads.max_bytes
    rows_before = await media_rows(runtime_for, node)
    async with node.client() as client:
        response = await client.post("/_matrix/media/v3/upload", content=b"x" * (limit + 1))
    assert response.status_code == 413
    assert response.json()["errcode"] == "M_TOO_LARGE"
    assert await media_rows(runtime_for, node) == rows_before
    assert leftover_temp_files(node) == []


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[RunningMmr]:
    config = parse_config(embedded_raw_config(tmp_path, uploads={"maxBytes": 1_000_000}))
    with serve_all(config) as server:
        yield RunningMmr(server.url, config, tmp_path)


async def test_chunked_upload_past_the_limit_is_refused_mid_stream(
    small_limit: RunningMmr, runtime_for: object
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"y" * 65536  # 2.6 MB in all, with no Content-Length

    async with small_limit.client() as client:
        response = await client.post("/_matrix/media/v3/upload", content=body())
    assert response.status_code == 413
    assert response.json()["errcode"] == "M_TOO_LARGE"
    assert await media_rows(runtime_for, small_limit) == 0
    assert leftover_temp_files(small_limit) == []
    assert not any(p.is_file() for p in (small_limit.data_dir / "media").rglob("*"))


async def test_config_reports_the_upload_limit(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        for path in ("/_matrix/client/v1/media/config", "/_matrix/media/v3/config",
                     "/_matrix/media/r0/config"):
            got = await client.get(path)
            assert got.json() == {"m.upload.size": embedded.config.uploads.max_bytes}


@pytest.mark.parametrize("path", [
    "/_matrix/client/v1/media/download/localhost/..%2F..%2Fetc%2Fpasswd",
    "/_matrix/client/v1/media/download/localhost/a.b",
    "/_matrix/client/v1/media/download/..%2F..%2F/abc",
    "/_matrix/client/v1/media/download/bad_host!/abc",
    "/_matrix/media/v3/download/localhost/..%2F..%2Fmmr.db",
])
async def test_traversal_and_invalid_names_touch_nothing(embedded: RunningMmr, path: str) -> None:
    async with embedded.client() as client:
        got = await client.get(path)
    assert got.status_code in (400, 404)
    assert got.json()["errcode"] in ("M_NOT_FOUND", "M_INVALID_PARAM", "M_UNRECOGNIZED")


async def test_unknown_media_is_not_found(node: RunningMmr) -> None:
    async with node.client() as client:
        got = await client.get("/_matrix/client/v1/media/download/localhost/doesnotexist")
    assert (got.status_code, got.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_tokens_are_required_and_checked(embedded: RunningMmr) -> None:
    async with embedded.client(token=None) as anonymous:
        missing = await upload(anonymous, b"data")
    async with embedded.client(token="not-a-real-token") as bad:
        unknown = await upload(bad, b"data")
        download = await bad.get("/_matrix/client/v1/media/download/localhost/abc")
    assert (missing.status_code, missing.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    assert (unknown.status_code, unknown.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    assert (download.status_code, download.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_unknown_routes_and_methods_are_unrecognized(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        unknown = await client.get("/_matrix/media/v3/nothing-here")
        wrong_method = await client.delete("/_matrix/media/v3/upload")
        bad_version = await client.post("/_matrix/media/v9/upload", content=b"x")
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_UNRECOGNIZED")
    assert (wrong_method.status_code, wrong_method.json()["errcode"]) == (405, "M_UNRECOGNIZED")
    assert bad_version.status_code == 404


async def test_cors_preflight_needs_no_token(embedded: RunningMmr) -> None:
    async with embedded.client(token=None) as client:
        got = await client.options("/_matrix/media/v3/upload")
    assert got.status_code == 200
    assert got.headers["access-control-allow-origin"] == "*"
    assert "Authorization" in got.headers["access-control-allow-headers"]
    assert "POST" in got.headers["access-control-allow-methods"]


async def test_errors_never_leak_tracebacks(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        got = await client.post("/_matrix/media/v3/upload", content=b"x",
                                headers={"Content-Length": "1"})
    assert "Traceback" not in got.text


async def test_health_readiness_and_version(node: RunningMmr) -> None:
    async with node.client(token=None) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        version = await client.get("/_matrix/media/version")
    assert health.json()["status"] == "ok"
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    assert version.json()["Version"]


async def test_an_unknown_host_gets_a_clear_error(tmp_path: Path) -> None:
    raw = embedded_raw_config(tmp_path)
    raw["homeservers"] = [{"name": "one.example", "csApi": ""}]
    with serve_all(parse_config(raw)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            got = await client.post("/_matrix/media/v3/upload", content=b"x",
                                    headers={"Host": "other.example",
                                             "Authorization": "Bearer test-shared-secret"})
    assert got.status_code == 404
    assert "other.example" in got.json()["error"]
