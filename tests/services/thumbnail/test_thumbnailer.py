"""The image work a worker does, run directly on real files of every supported format."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from services.thumbnail.sizing import Target, plan
from services.thumbnail.worker.formats import image_decoders
from services.thumbnail.worker.jobs import (
    CorruptMedia,
    SourceTooLarge,
    ThumbnailJob,
    ThumbnailOutput,
    UnsupportedMedia,
)
from services.thumbnail.worker.render import _decode_still, render_thumbnail
from shared.config import ThumbnailsConfig
from tests.services.thumbnail import media

FORMATS = image_decoders(ThumbnailsConfig().types)
CROP_96 = Target(96, 96, "crop")
SCALE_320 = Target(320, 240, "scale")
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def run(tmp_path: Path, data: bytes, content_type: str, target: Target = SCALE_320,
        animated: bool = False, max_pixels: int = 32_000_000) -> ThumbnailOutput:
    source = tmp_path / f"source-{time.monotonic_ns()}"
    source.write_bytes(data)
    job = ThumbnailJob(str(source), content_type, str(tmp_path), target, animated, max_pixels,
                       0.5, FORMATS)
    return render_thumbnail(job)


def read(output: ThumbnailOutput) -> Image.Image:
    assert output.path is not None
    return media.decode(Path(output.path).read_bytes())


@pytest.mark.parametrize(("content_type", "data"), [
    ("image/jpeg", media.jpeg()),
    ("image/png", media.png()),
    ("image/gif", media.encode(media.picture(400, 300), "GIF")),
    ("image/webp", media.encode(media.picture(400, 300), "WEBP")),
    ("image/bmp", media.encode(media.picture(400, 300), "BMP")),
    ("image/tiff", media.encode(media.picture(400, 300), "TIFF")),
    ("image/heic", media.encode(media.picture(400, 300), "HEIF")),
    ("image/avif", media.encode(media.picture(400, 300), "AVIF")),
])
def test_every_still_format_makes_a_thumbnail_of_the_right_size_and_picture(
    tmp_path: Path, content_type: str, data: bytes
) -> None:
    output = run(tmp_path, data, content_type, SCALE_320)
    thumb = read(output)
    assert output.content_type == "image/jpeg" and thumb.format == "JPEG"  # opaque sources
    assert thumb.size == (320, 240) == (output.width, output.height)
    assert media.near(media.colour_at(thumb, 0.1, 0.1), RED)
    assert media.near(media.colour_at(thumb, 0.9, 0.9), YELLOW)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    output = run(tmp_path, media.jpeg_with_orientation(orientation), "image/jpeg", SCALE_320)
    thumb = read(output)
    assert thumb.size == (320, 160)  # the upright picture is 400x200
    assert media.near(media.colour_at(thumb, 0.1, 0.1), RED)
    assert media.near(media.colour_at(thumb, 0.9, 0.1), GREEN)
    assert media.near(media.colour_at(thumb, 0.1, 0.9), BLUE)
    assert not thumb.getexif()


def test_no_metadata_reaches_a_thumbnail(tmp_path: Path) -> None:
    output = run(tmp_path, media.jpeg_with_private_metadata(), "image/jpeg", CROP_96)
    raw = Path(output.path or "").read_bytes()
    thumb = media.decode(raw)
    assert not thumb.getexif()
    assert {"exif", "comment", "icc_profile", "xmp"}.isdisjoint(thumb.info)
    assert b"SecretCam" not in raw and b"at home" not in raw


def test_a_tiny_source_with_metadata_is_re_encoded_rather_than_returned(tmp_path: Path) -> None:
    output = run(tmp_path, media.jpeg_with_private_metadata(40, 30), "image/jpeg", SCALE_320)
    assert output.path is not None and (output.width, output.height) == (40, 30)
    assert not read(output).getexif()


def test_transparency_keeps_png_and_opaque_pngs_become_jpeg(tmp_path: Path) -> None:
    clear = run(tmp_path, media.png(400, 300, transparent=True), "image/png", CROP_96)
    assert clear.content_type == "image/png" and read(clear).mode == "RGBA"
    opaque = run(tmp_path, media.png(400, 300), "image/png", CROP_96)
    assert opaque.content_type == "image/jpeg"


def test_a_source_smaller_than_the_target_is_the_thumbnail_itself(tmp_path: Path) -> None:
    output = run(tmp_path, media.png(20, 20), "image/png", Target(640, 480, "scale"))
    assert output.path is None
    assert (output.content_type, output.width, output.height) == ("image/png", 20, 20)


@pytest.mark.parametrize(("image_format", "content_type"), [
    ("GIF", "image/gif"), ("PNG", "image/apng"), ("WEBP", "image/webp"),
])
def test_animated_sources_give_animated_webp_only_when_asked(
    tmp_path: Path, image_format: str, content_type: str
) -> None:
    data = media.animated(image_format, count=4)
    moving = run(tmp_path, data, content_type, CROP_96, animated=True)
    assert moving.content_type == "image/webp" and moving.animated
    thumb = read(moving)
    assert getattr(thumb, "n_frames", 1) == 4 and thumb.size == (96, 96)
    still = run(tmp_path, data, content_type, CROP_96, animated=False)
    assert not still.animated and getattr(read(still), "n_frames", 1) == 1
    assert still.content_type in ("image/jpeg", "image/png")


def test_asking_for_animation_of_a_still_gives_a_still(tmp_path: Path) -> None:
    output = run(tmp_path, media.jpeg(), "image/jpeg", CROP_96, animated=True)
    assert output.content_type == "image/jpeg" and not output.animated


def test_a_declared_giant_is_refused_from_its_header(tmp_path: Path) -> None:
    data = media.declared_huge_png()
    assert len(data) < 500
    started = time.monotonic()
    with pytest.raises(SourceTooLarge):
        run(tmp_path, data, "image/png")
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(("content_type", "data"), [
    ("image/jpeg", media.jpeg(800, 600)[:3000]),
    ("image/png", media.png(800, 600)[:2000]),
    ("image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 64),
    ("video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100),
])
def test_truncated_or_corrupt_files_are_refused(tmp_path: Path, content_type: str, data: bytes) -> None:
    with pytest.raises((CorruptMedia, UnsupportedMedia)):
        run(tmp_path, data, content_type)


@pytest.mark.parametrize(("content_type", "data"), [
    ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
    ("image/png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
    ("application/pdf", b"%PDF-1.4\n"),
])
def test_what_no_allowed_decoder_reads_is_unsupported(
    tmp_path: Path, content_type: str, data: bytes
) -> None:
    with pytest.raises(UnsupportedMedia):
        run(tmp_path, data, content_type)


@pytest.mark.parametrize(("content_type", "container", "codec"), [
    ("video/mp4", "mp4", "libx264"),
    ("video/webm", "webm", "libvpx"),
    ("video/quicktime", "mov", "mpeg4"),
])
def test_videos_give_a_still_from_their_middle(
    tmp_path: Path, content_type: str, container: str, codec: str
) -> None:
    data = media.video(container, codec, 320, 240, count=24)
    output = run(tmp_path, data, content_type, CROP_96)
    thumb = read(output)
    assert output.content_type == "image/jpeg" and thumb.size == (96, 96)
    # Frames cycle red, green, blue, yellow, cyan: frame 12 of 24, the middle, is blue.
    assert media.near(media.colour_at(thumb, 0.5, 0.5), BLUE, tolerance=60)


def test_audio_gives_its_cover_art(tmp_path: Path) -> None:
    cover = media.jpeg(300, 300)
    output = run(tmp_path, media.mp3_with_cover(cover), "audio/mpeg", CROP_96)
    thumb = read(output)
    assert thumb.size == (96, 96)
    assert media.near(media.colour_at(thumb, 0.05, 0.05), RED)
    with pytest.raises(UnsupportedMedia):
        run(tmp_path, media.mp3_with_cover(None), "audio/mpeg", CROP_96)


def test_a_large_jpeg_is_decoded_at_reduced_size(tmp_path: Path) -> None:
    source = tmp_path / "big.jpg"
    source.write_bytes(media.jpeg(4000, 3000))
    with Image.open(source) as image:
        picture = _decode_still(image, 1, plan(4000, 3000, CROP_96), ThumbnailJob(
            str(source), "image/jpeg", str(tmp_path), CROP_96, False, 32_000_000, 0.5, FORMATS))
        assert picture.size == (500, 375)  # 1/8 scale: DCT scaling, not a full decode
