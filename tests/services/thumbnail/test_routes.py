"""Thumbnails over HTTP in the embedded default: the spec's routes, parameters and answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.config import MmrConfig
from shared.storage.keys import content_key
from tests.conftest import SERVER_NAME
from tests.services.thumbnail import media
from tests.services.thumbnail.conftest import Node, Serve, embedded_app
from tests.services.thumbnail.helpers import (
    LEGACY,
    quarantine,
    stored_thumbnails,
    thumbnail,
    unique_jpeg,
    upload,
)

RuntimeFor = Callable[..., Any]


async def test_a_thumbnail_is_made_once_stored_and_then_served_from_storage(
    embedded: Node, runtime_for: RuntimeFor
) -> None:
    async with embedded.client() as client:
        media_id = await upload(client, unique_jpeg(1200, 900), "image/jpeg")
        first = await thumbnail(client, media_id, 96, 96, "crop")
        again = await thumbnail(client, media_id, 96, 96, "crop")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/jpeg"
    assert first.headers["content-disposition"] == "inline; filename=thumbnail.jpg"
    assert media.decode(first.content).size == (96, 96)
    assert again.content == first.content
    rt = await runtime_for(embedded.config)
    [row] = await stored_thumbnails(rt, media_id)
    assert (row.key.width, row.key.height, row.key.method, row.key.animated) == (96, 96, "crop", False)
    assert row.location == content_key(row.sha256)
    assert row.datastore_id == "local"
    assert embedded.pool.jobs_run >= 1


async def test_scale_keeps_the_aspect_ratio_and_crop_fills_the_request(embedded: Node) -> None:
    async with embedded.client() as client:
        media_id = await upload(client, unique_jpeg(1600, 800), "image/jpeg")
        scaled = await thumbnail(client, media_id, 640, 480, "scale")
        default = await thumbnail(client, media_id, 640, 480, method=None)
        cropped = await thumbnail(client, media_id, 100, 50, "crop")
    assert media.decode(scaled.content).size == (640, 320)
    assert default.content == scaled.content  # scale is the default method
    width, height = media.decode(cropped.content).size
    assert width / height == pytest.approx(2, rel=0.02) and width >= 100 and height >= 50


async def test_a_source_smaller_than_asked_is_returned_as_uploaded(embedded: Node) -> None:
    tiny = media.png(24, 16)
    async with embedded.client() as client:
        media_id = await upload(client, tiny, "image/png")
        response = await thumbnail(client, media_id, 640, 480, "scale")
    assert response.status_code == 200
    assert response.content == tiny
    assert response.headers["content-disposition"] == "inline; filename=thumbnail.png"


@pytest.mark.parametrize(("kind", "content_type"), [
    ("heic", "image/heic"), ("avif", "image/avif"), ("tiff", "image/tiff"), ("bmp", "image/bmp"),
    ("webp", "image/webp"),
])
async def test_more_source_formats_than_mmr(embedded: Node, kind: str, content_type: str) -> None:
    image_format = {"heic": "HEIF"}.get(kind, kind.upper())
    data = media.encode(media.picture(500, 400), image_format)
    async with embedded.client() as client:
        media_id = await upload(client, data, content_type)
        response = await thumbnail(client, media_id, 96, 96, "crop")
    assert response.status_code == 200, response.text
    assert media.decode(response.content).size == (96, 96)


async def test_video_gets_a_still_of_a_representative_frame(embedded: Node) -> None:
    clip = media.video("mp4", "libx264", 320, 240)
    async with embedded.client() as client:
        media_id = await upload(client, clip, "video/mp4")
        response = await thumbnail(client, media_id, 96, 96, "crop")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert media.decode(response.content).size == (96, 96)


async def test_animation_only_when_asked_for(embedded: Node) -> None:
    gif = media.animated("GIF", count=5)
    async with embedded.client() as client:
        media_id = await upload(client, gif, "image/gif")
        moving = await thumbnail(client, media_id, 96, 96, "crop", animated="true")
        still = await thumbnail(client, media_id, 96, 96, "crop", animated="false")
        absent = await thumbnail(client, media_id, 96, 96, "crop")
    assert moving.headers["content-type"] == "image/webp"
    assert moving.headers["content-disposition"] == "inline; filename=thumbnail.webp"
    assert getattr(media.decode(moving.content), "n_frames", 1) == 5
    for response in (still, absent):
        assert response.headers["content-type"] in ("image/jpeg", "image/png")
        assert getattr(media.decode(response.content), "n_frames", 1) == 1


@pytest.mark.parametrize(("params", "errcode"), [
    ({"height": 96}, "M_MISSING_PARAM"),
    ({"width": 96}, "M_MISSING_PARAM"),
    ({"width": 0, "height": 96}, "M_INVALID_PARAM"),
    ({"width": -5, "height": 96}, "M_INVALID_PARAM"),
    ({"width": "big", "height": 96}, "M_INVALID_PARAM"),
    ({"width": 96, "height": 96, "method": "stretch"}, "M_INVALID_PARAM"),
    ({"width": 96, "height": 96, "animated": "maybe"}, "M_INVALID_PARAM"),
    ({"width": "9" * 5000, "height": 96}, "M_INVALID_PARAM"),
    ({"width": 96, "height": 96, "timeout_ms": "-1"}, "M_INVALID_PARAM"),
])
async def test_bad_parameters_are_400(embedded: Node, params: dict[str, Any], errcode: str) -> None:
    async with embedded.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
        response = await client.get(f"/_matrix/client/v1/media/thumbnail/{SERVER_NAME}/{media_id}",
                                    params=params)
    assert response.status_code == 400
    assert response.json()["errcode"] == errcode


async def test_unknown_or_invalid_media_is_404(embedded: Node) -> None:
    async with embedded.client() as client:
        unknown = await thumbnail(client, "nosuchmediaid")
        invalid = await client.get(f"/_matrix/client/v1/media/thumbnail/{SERVER_NAME}/bad.id",
                                   params={"width": 96, "height": 96})
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_NOT_FOUND")
    assert (invalid.status_code, invalid.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_the_client_route_needs_a_token(embedded: Node) -> None:
    async with embedded.client(token=None) as client:
        response = await thumbnail(client, "whatever")
    assert (response.status_code, response.json()["errcode"]) == (401, "M_MISSING_TOKEN")


@pytest.mark.parametrize(("data", "content_type"), [
    (b"just some words", "text/plain"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "image/svg+xml"),
    (b"\x00\x01\x02" * 100, "application/octet-stream"),
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "image/png"),
])
async def test_what_cannot_be_thumbnailed_is_400_not_500(
    embedded: Node, data: bytes, content_type: str
) -> None:
    async with embedded.client() as client:
        media_id = await upload(client, data, content_type)
        response = await thumbnail(client, media_id)
    assert (response.status_code, response.json()["errcode"]) == (400, "M_UNKNOWN")


async def test_a_truncated_image_is_400_and_the_next_request_is_served(embedded: Node) -> None:
    async with embedded.client() as client:
        broken = await upload(client, unique_jpeg(800, 600)[:4000], "image/jpeg")
        good = await upload(client, unique_jpeg(), "image/jpeg")
        refused = await thumbnail(client, broken)
        served = await thumbnail(client, good)
    assert (refused.status_code, refused.json()["errcode"]) == (400, "M_UNKNOWN")
    assert served.status_code == 200


async def test_a_header_declaring_a_giant_picture_is_413_before_decoding(embedded: Node) -> None:
    bomb = media.declared_huge_png(30000, 30000)
    async with embedded.client() as client:
        media_id = await upload(client, bomb, "image/png")
        response = await thumbnail(client, media_id)
        again = await thumbnail(client, media_id)
        good = await thumbnail(client, await upload(client, unique_jpeg(), "image/jpeg"))
    assert (response.status_code, response.json()["errcode"]) == (413, "M_TOO_LARGE")
    assert again.status_code == 413
    assert good.status_code == 200


async def test_legacy_routes_serve_unfrozen_media_only(
    serve: Serve, embedded_config: Callable[..., MmrConfig]
) -> None:
    config = embedded_config(repo={"freezeUnauthenticatedMedia": False})
    node = serve(embedded_app(config), config)
    async with node.client() as client:
        open_media = await upload(client, unique_jpeg(), "image/jpeg")
    async with node.client(token=None) as anonymous:
        for version in ("r0", "v1", "v3"):
            response = await thumbnail(anonymous, open_media, path=LEGACY.format(version=version))
            assert response.status_code == 200, response.text
            assert media.decode(response.content).size == (96, 96)


async def test_frozen_media_is_unknown_to_the_legacy_routes(embedded: Node) -> None:
    async with embedded.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
    async with embedded.client(token=None) as anonymous:
        response = await thumbnail(anonymous, media_id, path=LEGACY.format(version="v3"))
    assert (response.status_code, response.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_quarantined_media_gets_the_placeholder_or_404(
    serve: Serve, embedded_config: Callable[..., MmrConfig], runtime_for: RuntimeFor
) -> None:
    replaced = embedded_config()
    node = serve(embedded_app(replaced), replaced)
    rt = await runtime_for(replaced)
    async with node.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
        await quarantine(rt, media_id)
        placeholder = await thumbnail(client, media_id, 96, 96, "crop")
        large = await thumbnail(client, media_id, 640, 480, "scale")
    assert placeholder.status_code == 200
    assert placeholder.headers["content-type"] == "image/png"
    assert media.decode(placeholder.content).size == (96, 96)
    assert media.decode(large.content).size == (640, 480)
    assert await stored_thumbnails(rt, media_id) == []  # nothing was made of the source


async def test_quarantined_media_is_404_without_replacement(
    serve: Serve, embedded_config: Callable[..., MmrConfig], runtime_for: RuntimeFor
) -> None:
    config = embedded_config(quarantine={"replaceThumbnails": False})
    node = serve(embedded_app(config), config)
    rt = await runtime_for(config)
    async with node.client() as client:
        media_id = await upload(client, unique_jpeg(), "image/jpeg")
        await quarantine(rt, media_id)
        response = await thumbnail(client, media_id)
    assert (response.status_code, response.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_identical_sources_share_one_stored_thumbnail(
    embedded: Node, runtime_for: RuntimeFor
) -> None:
    data = unique_jpeg()
    async with embedded.client() as client:
        first = await upload(client, data, "image/jpeg")
        second = await upload(client, data, "image/jpeg")
        a = await thumbnail(client, first)
        b = await thumbnail(client, second)
    assert a.content == b.content
    rt = await runtime_for(embedded.config)
    [row_a] = await stored_thumbnails(rt, first)
    [row_b] = await stored_thumbnails(rt, second)
    assert (row_a.datastore_id, row_a.location) == (row_b.datastore_id, row_b.location)
