"""matrix-media-repo's remaining client endpoints, in the embedded default and on a cluster node:
identicons, media info, MSC4034 usage and config fields, `/versions` without a homeserver, and
raw paths that must never be routed.
"""

from __future__ import annotations

import hashlib
import io
import wave
from pathlib import Path

import httpx
import pytest
from PIL import Image

from shared.config import parse_config
from tests.conftest import RunningMmr, embedded_raw_config, serve_all
from tests.services.upload.helpers import media_path, unique_bytes

IDENTICON = "/_matrix/media/r0/identicon"
INFO = "/_matrix/media/unstable/info"
USAGE = "/_matrix/media/unstable/org.matrix.msc4034/usage"
PALETTE = [(45, 79, 255), (254, 180, 44), (226, 121, 234), (30, 179, 253),
           (232, 77, 65), (49, 203, 115), (141, 69, 170)]


@pytest.fixture(params=["embedded", "cluster_node"])
def node(request: pytest.FixtureRequest) -> RunningMmr:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, format="PNG")
    return out.getvalue()


def wav(seconds: float, channels: int, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x01" * channels * int(rate * seconds))
    return out.getvalue()


async def upload(client: httpx.AsyncClient, data: bytes, content_type: str) -> str:
    got = await client.post("/_matrix/media/v3/upload", content=data,
                            headers={"Content-Type": content_type})
    assert got.status_code == 200, got.text
    return media_path(got.json()["content_uri"])


# --- identicons ---------------------------------------------------------------------------------


async def test_identicon_is_a_png_drawn_from_the_seed_as_mmr_draws_it(node: RunningMmr) -> None:
    async with node.client(token=None) as anonymous:  # no token needed, as in MMR
        got = await anonymous.get(f"{IDENTICON}/@alice:example.org")
        again = await anonymous.get(f"{IDENTICON}/@alice:example.org")
        other = await anonymous.get(f"{IDENTICON}/@bob:example.org")
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/png"
    assert got.content == again.content != other.content
    image = Image.open(io.BytesIO(got.content)).convert("RGB")
    assert image.size == (96, 96)
    digest = hashlib.md5(b"/@alice:example.org").digest()
    colours = {colour for _, colour in image.getcolors()}  # type: ignore[union-attr]
    assert colours <= {(224, 224, 224), PALETTE[digest[0] % 7]}
    assert image.getpixel((0, 0)) == (224, 224, 224)  # half a cell of margin
    mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # Five 16-pixel cells from x=8: the grid mirrors around its middle column.
    assert all(image.getpixel((8 + 16 * c + 8, y)) == mirrored.getpixel((8 + 16 * c + 8, y))
               for c in range(5) for y in range(96))


@pytest.mark.parametrize(("query", "size"), [
    ("width=1000", (512, 512)), ("width=10", (96, 96)), ("width=200", (200, 200)),
    ("width=200&height=100", (200, 100)), ("height=300", (96, 300)),
])
async def test_identicon_sizes_are_clamped_to_96_through_512(
    embedded: RunningMmr, query: str, size: tuple[int, int]
) -> None:
    async with embedded.client() as client:
        got = await client.get(f"{IDENTICON}/seed?{query}")
    assert Image.open(io.BytesIO(got.content)).size == size


async def test_identicon_with_bad_sizes_is_400(embedded: RunningMmr) -> None:
    async with embedded.client() as client:
        got = await client.get(f"{IDENTICON}/seed?width=big")
    assert (got.status_code, got.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_identicons_can_be_turned_off(tmp_path: Path) -> None:
    config = parse_config(embedded_raw_config(tmp_path, identicons={"enabled": False}))
    with serve_all(config) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            got = await client.get(f"{IDENTICON}/seed")
    assert (got.status_code, got.json()["errcode"]) == (404, "M_NOT_FOUND")


# --- media info ---------------------------------------------------------------------------------


async def test_info_of_an_image_tells_type_size_hash_dimensions_and_thumbnails(
    node: RunningMmr,
) -> None:
    data = png(40, 30)
    async with node.client() as client:
        mxc = await upload(client, data, "image/png")
        before = await client.get(f"{INFO}/{mxc}")
        thumb = await client.get(f"/_matrix/client/v1/media/thumbnail/{mxc}?width=32&height=32")
        assert thumb.status_code == 200
        after = await client.get(f"/_matrix/media/unstable/io.t2bot.media/info/{mxc}")
    assert before.status_code == 200, before.text
    assert before.json() == {
        "content_uri": f"mxc://{mxc}", "content_type": "image/png", "size": len(data),
        "hashes": {"sha256": hashlib.sha256(data).hexdigest()}, "width": 40, "height": 30,
    }
    (made,) = after.json()["thumbnails"]
    assert made["ready"] is True and made["content_type"].startswith("image/")
    assert made["width"] in {s.width for s in node.config.thumbnails.sizes} and made["size"] > 0


async def test_info_of_audio_tells_duration_and_channels(node: RunningMmr) -> None:
    data = wav(seconds=1.5, channels=2)
    async with node.client() as client:
        mxc = await upload(client, data, "audio/wav")
        got = (await client.get(f"{INFO}/{mxc}")).json()
    assert got["num_channels"] == 2
    assert got["duration"] == pytest.approx(1.5, abs=0.05)
    assert "width" not in got


async def test_info_of_other_files_and_missing_media(node: RunningMmr) -> None:
    data = unique_bytes(500)
    async with node.client() as client:
        mxc = await upload(client, data, "application/pdf")
        got = (await client.get(f"{INFO}/{mxc}")).json()
        missing = await client.get(f"{INFO}/localhost/doesnotexist")
    assert got == {"content_uri": f"mxc://{mxc}", "content_type": "application/pdf",
                   "size": 500, "hashes": {"sha256": hashlib.sha256(data).hexdigest()}}
    assert (missing.status_code, missing.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_info_needs_a_token(embedded: RunningMmr) -> None:
    async with embedded.client(token=None) as anonymous:
        got = await anonymous.get(f"{INFO}/localhost/abc")
    assert (got.status_code, got.json()["errcode"]) == (401, "M_MISSING_TOKEN")


# --- MSC4034 ------------------------------------------------------------------------------------


async def test_usage_counts_what_the_user_stores(node: RunningMmr) -> None:
    async with node.client() as client:
        empty = await client.get(USAGE)
        sizes = [300, 700]
        for size in sizes:
            await upload(client, unique_bytes(size), "application/octet-stream")
        used = await client.get(USAGE)
    assert empty.status_code == 200
    base_bytes = empty.json().get("org.matrix.msc4034.storage.used", 0)
    base_files = empty.json().get("org.matrix.msc4034.storage.files", 0)
    assert used.json() == {"org.matrix.msc4034.storage.used": base_bytes + 1000,
                           "org.matrix.msc4034.storage.files": base_files + 2}


async def test_usage_of_a_user_with_nothing_stored_is_empty(tmp_path: Path) -> None:
    with serve_all(parse_config(embedded_raw_config(tmp_path))) as server:
        async with RunningMmr(server.url, parse_config(embedded_raw_config(tmp_path)),
                              tmp_path).client() as client:
            got = await client.get(USAGE)
            anonymous = await client.get(USAGE, headers={"Authorization": ""})
    assert (got.status_code, got.json()) == (200, {})
    assert anonymous.status_code == 401


async def test_config_reports_the_msc4034_quota_fields(tmp_path: Path) -> None:
    raw = embedded_raw_config(tmp_path, uploads={"quotas": {"enabled": True, "users": [
        {"glob": "@*", "maxBytes": 5000, "maxFiles": 7}]}})
    config = parse_config(raw)
    with serve_all(config) as server:
        async with RunningMmr(server.url, config, tmp_path).client() as client:
            got = await client.get("/_matrix/client/v1/media/config")
    assert got.json() == {"m.upload.size": config.uploads.max_bytes,
                          "org.matrix.msc4034.storage.size": 5000,
                          "org.matrix.msc4034.storage.max_files": 7}


# --- versions without a homeserver --------------------------------------------------------------


async def test_versions_without_a_homeserver_name_authenticated_media(embedded: RunningMmr) -> None:
    async with embedded.client(token=None) as anonymous:
        got = await anonymous.get("/_matrix/client/versions")
    assert got.status_code == 200
    assert got.json() == {"versions": ["v1.11"], "unstable_features": {}}


# --- raw paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/_matrix/client/v1/media/download/a%2Fb/abcdef",
    "/_matrix/client/v1/media/download/a%2fb/abcdef",
    "/_matrix/media/v3/download/a%2Fb/abcdef",
    "/_matrix/client/v1/media/thumbnail/a%2Fb/abcdef?width=32&height=32",
    "/_matrix/client/v1/media/download/localhost%00/abcdef",
    "/_matrix/client/v1/media/download/localhost/abc%00def",
    "/_matrix/client/v1/media/download/example.org/ab%2Fcd",
    "/_matrix/client/v1/media/download/example.org/abcdef/x%00.txt",
    "/_matrix/media/unstable/info/a%2Fb/abcdef",
    "/_matrix/federation/v1/media/download/ab%2Fcd",
    "/_matrix/media/unstable/admin/usage/localhost/users?user_id=%40a%00b%3Alocalhost",
    "/_matrix/client/v1/media/preview_url?url=https%3A%2F%2Fexample.org%2F%00",
])
async def test_encoded_slashes_and_nul_bytes_are_400_before_anything_else(
    node: RunningMmr, path: str
) -> None:
    async with node.client(token="not-even-checked") as client:
        got = await client.get(path)
    assert (got.status_code, got.json()["errcode"]) == (400, "M_INVALID_PARAM"), got.text
    assert got.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("path", [
    "/_matrix/client/v1/media/download/ex ample.org/abcdef",
    "/_matrix/client/v1/media/download/exa%0Ample.org/abcdef",
    "/_matrix/client/v1/media/download/localhost/abc%0Ddef",
    "/_matrix/client/v1/media/download/example.org/abc.def",
    "/_matrix/client/v1/media/download/%5B%3A%3A1%5D%3A99999/abc",
    "/_matrix/client/v1/media/download/bad_host!/abc",
    "/_matrix/media/v3/upload/localhost/abc.def",
    "/_matrix/federation/v1/media/thumbnail/bad.id",
])
async def test_names_outside_the_grammar_are_404_before_anything_else(
    node: RunningMmr, path: str
) -> None:
    async with node.client(token="not-even-checked") as client:
        got = await client.request("PUT" if "/upload/" in path else "GET", path)
    assert (got.status_code, got.json()["errcode"]) == (404, "M_NOT_FOUND"), got.text


async def test_valid_encodings_still_route(embedded: RunningMmr) -> None:
    data = unique_bytes(200)
    async with embedded.client() as client:
        mxc = await upload(client, data, "text/plain")
        server, media_id = mxc.split("/")
        encoded = "".join(f"%{ord(c):02X}" for c in media_id[:3]) + media_id[3:]
        got = await client.get(f"/_matrix/client/v1/media/download/{server}/{encoded}/a%20b.txt")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-disposition"] == 'inline; filename="a b.txt"'
