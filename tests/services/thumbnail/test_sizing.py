"""The spec's size rules, as pure arithmetic: snapping, crop/scale, never upscaling."""

from __future__ import annotations

import pytest

from services.thumbnail.sizing import ResizePlan, Target, decode_hint, plan, snap
from shared.config import ThumbnailsConfig

SIZES = ThumbnailsConfig().sizes  # 32x32 crop, 96x96 crop, 320x240, 640x480, 800x600 scale


@pytest.mark.parametrize(("asked", "method", "expected"), [
    ((32, 32), "crop", (32, 32)),        # an exact configured size is used as is
    ((96, 96), "crop", (96, 96)),
    ((800, 600), "scale", (800, 600)),
    ((50, 50), "crop", (96, 96)),        # otherwise the smallest size that covers the request
    ((100, 100), "scale", (320, 240)),
    ((300, 300), "scale", (640, 480)),   # 320x240 is too short for 300
    ((20, 20), "scale", (320, 240)),     # sizes of the asked method come first
])
def test_requests_snap_to_a_configured_size_not_smaller_than_asked(
    asked: tuple[int, int], method: str, expected: tuple[int, int]
) -> None:
    target = snap(asked[0], asked[1], method, SIZES, dynamic=False)  # type: ignore[arg-type]
    assert (target.width, target.height) == expected
    assert target.width >= asked[0] and target.height >= asked[1]


def test_a_request_beyond_every_size_gets_the_largest() -> None:
    assert snap(2000, 2000, "scale", SIZES, dynamic=False) == Target(800, 600, "scale")


def test_crop_targets_keep_the_requested_aspect_ratio() -> None:
    wide = snap(100, 50, "crop", SIZES, dynamic=False)
    assert wide.width / wide.height == pytest.approx(2, rel=0.02)
    assert wide.width >= 100 and wide.height >= 50
    tall = snap(40, 90, "crop", SIZES, dynamic=False)
    assert tall.width / tall.height == pytest.approx(40 / 90, rel=0.02)
    assert tall.width >= 40 and tall.height >= 90


def test_dynamic_sizing_uses_the_asked_size_up_to_the_largest_configured() -> None:
    assert snap(123, 77, "scale", SIZES, dynamic=True) == Target(123, 77, "scale")
    assert snap(5000, 100, "scale", SIZES, dynamic=True) == Target(800, 100, "scale")
    capped_crop = snap(1600, 400, "crop", SIZES, dynamic=True)
    assert capped_crop.width / capped_crop.height == pytest.approx(4, rel=0.02)


def test_scale_fits_inside_the_target_keeping_the_aspect_ratio() -> None:
    resize = plan(4000, 3000, Target(800, 600, "scale"))
    assert resize.size == (800, 600)
    panorama = plan(4000, 1000, Target(800, 600, "scale"))
    assert panorama.size == (800, 200)


def test_crop_fills_the_target_from_the_centre() -> None:
    resize = plan(4000, 3000, Target(96, 96, "crop"))
    assert resize.size == (96, 96)
    left, top, right, bottom = resize.box
    assert (right - left) == pytest.approx(3000) and (bottom - top) == pytest.approx(3000)
    assert left == pytest.approx(500) and top == 0


@pytest.mark.parametrize("method", ["crop", "scale"])
def test_a_source_that_fits_is_returned_as_it_is(method: str) -> None:
    resize = plan(20, 30, Target(640, 480, method))  # type: ignore[arg-type]
    assert resize.is_original and resize.size == (20, 30)


def test_crop_never_upscales_a_source_short_on_one_side() -> None:
    resize = plan(80, 400, Target(96, 96, "crop"))
    assert resize.size == (80, 80)  # the target's aspect ratio, at the source's own scale
    assert resize.scale_factor == pytest.approx(1)


@pytest.mark.parametrize("source", [(4000, 3000), (3000, 4000), (97, 5000), (5000, 97), (33, 33)])
@pytest.mark.parametrize("target", [Target(32, 32, "crop"), Target(96, 96, "crop"),
                                    Target(320, 240, "scale"), Target(800, 600, "scale")])
def test_no_plan_ever_upscales_or_goes_below_the_target_needlessly(
    source: tuple[int, int], target: Target
) -> None:
    resize = plan(*source, target)
    assert resize.scale_factor <= 1 + 1e-9
    assert resize.size[0] <= max(target.width, source[0])
    if source[0] >= target.width and source[1] >= target.height:
        if target.method == "crop":
            assert resize.size == (target.width, target.height)
        else:
            assert resize.size[0] == target.width or resize.size[1] == target.height


def test_decode_hint_keeps_enough_pixels_for_the_plan() -> None:
    resize = plan(4000, 3000, Target(96, 96, "crop"))
    width, height = decode_hint(4000, 3000, resize)
    # Cropping 3000x3000 down to 96x96 needs at least 96 pixels across the kept square.
    assert width * 3000 / 4000 >= 96 and height >= 96
    assert decode_hint(20, 30, ResizePlan((20, 30), (0, 0, 20, 30), (20, 30))) == (20, 30)
