"""Every 200 carries the spec's headers: exact Content-Type, inline only for the 26 safe types,
the filename per RFC 6266, sandboxing CSP, CORP, nosniff, Cache-Control and an ETag."""

from __future__ import annotations

import httpx
import pytest

from shared.matrix.disposition import INLINE_CONTENT_TYPES
from tests.conftest import RunningMmr
from tests.services.download.conftest import ServeFactory
from tests.services.download.helpers import (
    DOWNLOAD,
    LEGACY_DOWNLOAD,
    disposition_filename,
    disposition_type,
    unique_bytes,
    upload,
)

ATTACHMENT_TYPES = [
    "image/svg+xml", "image/svg", "text/html", "application/javascript", "application/xhtml+xml",
    "application/pdf", "text/xml", "application/octet-stream", "img/png", "text/plain+evil",
]
FILENAMES = ["ascii", "name with spaces", "name;with;semicolons", "café ☕ 🐔.png", 'quote"d']


@pytest.fixture(scope="module")
def server(serve_embedded: ServeFactory) -> RunningMmr:
    # Unfrozen, so the same media can be checked on the legacy routes too.
    return serve_embedded(repo={"freezeUnauthenticatedMedia": False})


def assert_security_headers(headers: httpx.Headers) -> None:
    assert headers["content-security-policy"].startswith("sandbox;")
    assert headers["cross-origin-resource-policy"] == "cross-origin"
    assert headers["x-content-type-options"] == "nosniff"
    assert "max-age" in headers["cache-control"]
    assert headers["etag"].startswith('"')


@pytest.mark.parametrize("route", [DOWNLOAD, LEGACY_DOWNLOAD])
@pytest.mark.parametrize("content_type", sorted(INLINE_CONTENT_TYPES))
async def test_the_26_safe_types_are_inline_with_their_exact_type(
    server: RunningMmr, route: str, content_type: str
) -> None:
    data = unique_bytes()
    async with server.client() as client:
        mxc = await upload(client, data, content_type)
        response = await client.get(f"{route}/{mxc}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == "inline"
    assert_security_headers(response.headers)


@pytest.mark.parametrize("content_type", ["Text/Plain; charset=utf-8", "IMAGE/PNG", "video/mp4; codecs=avc1"])
async def test_safe_types_with_parameters_or_capitals_are_inline_and_kept_as_sent(
    server: RunningMmr, content_type: str
) -> None:
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), content_type)
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == "inline"


@pytest.mark.parametrize("route", [DOWNLOAD, LEGACY_DOWNLOAD])
@pytest.mark.parametrize("content_type", ATTACHMENT_TYPES)
async def test_every_other_type_is_an_attachment(
    server: RunningMmr, route: str, content_type: str
) -> None:
    async with server.client() as client:
        mxc = await upload(client, b"<svg onload=alert(1)>" + unique_bytes(), content_type)
        response = await client.get(f"{route}/{mxc}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == "attachment"
    assert_security_headers(response.headers)


async def test_media_uploaded_without_a_type_is_served_as_octet_stream(server: RunningMmr) -> None:
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), content_type=None)
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == "attachment"


@pytest.mark.parametrize("route", [DOWNLOAD, LEGACY_DOWNLOAD])
@pytest.mark.parametrize("filename", FILENAMES)
async def test_the_uploaded_filename_round_trips(server: RunningMmr, route: str, filename: str) -> None:
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), "text/plain", filename=filename)
        response = await client.get(f"{route}/{mxc}")
    header = response.headers["content-disposition"]
    assert disposition_type(header) == "inline"
    assert disposition_filename(header) == filename
    if not filename.isascii():
        assert "filename*=utf-8''" in header


@pytest.mark.parametrize("route", [DOWNLOAD, LEGACY_DOWNLOAD])
@pytest.mark.parametrize("path_name", ["file.png", "name with spaces", "name;with;semicolons", "☕"])
async def test_a_filename_in_the_path_replaces_the_uploaded_one(
    server: RunningMmr, route: str, path_name: str
) -> None:
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png", filename="uploaded.png")
        response = await client.get(f"{route}/{mxc}/{path_name}")
    assert response.status_code == 200
    assert disposition_filename(response.headers["content-disposition"]) == path_name


async def test_control_characters_are_stripped_from_filenames(server: RunningMmr) -> None:
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), "text/plain", filename="a\tb\x7fc.txt")
        response = await client.get(f"{DOWNLOAD}/{mxc}/evil%0d%0aSet-Cookie:%20x=1")
    header = response.headers["content-disposition"]
    assert "\r" not in header and "\n" not in header
    assert "set-cookie" not in {name.lower() for name in response.headers}
    assert disposition_filename(header) == "evilSet-Cookie: x=1"


async def test_no_filename_means_no_filename_parameter(server: RunningMmr) -> None:
    async with server.client() as client:
        mxc = await upload(client, unique_bytes(), "image/png")
        response = await client.get(f"{DOWNLOAD}/{mxc}")
    assert response.headers["content-disposition"] == "inline"
