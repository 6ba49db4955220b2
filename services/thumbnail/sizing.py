"""Thumbnail geometry: which size a request gets, and how a source becomes that size.

Pure arithmetic, no image library, so the spec's size rules are tested on their own:

* the requested size is a minimum: a thumbnail is never smaller than asked unless the source is;
* nothing is ever upscaled;
* a source that already fits in the target is served as it is (spec: "return the original");
* `crop` answers in the requested aspect ratio, `scale` keeps the source's.

Every decision depends only on the snapped `Target` and the source, never on the raw request, so
one stored thumbnail per target is right for every request that snaps to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.config import ThumbnailSize

Method = Literal["crop", "scale"]


@dataclass(frozen=True)
class Target:
    """The size a thumbnail is generated at and stored under."""

    width: int
    height: int
    method: Method


@dataclass(frozen=True)
class ResizePlan:
    """How to turn a `source_size` image into the thumbnail.

    `box` is the region of the source to keep (left, top, right, bottom; floats are fine for
    Pillow's `resize(box=...)`), `size` the output size. `is_original` means the output would be
    the source itself: no pixel needs to change.
    """

    source_size: tuple[int, int]
    box: tuple[float, float, float, float]
    size: tuple[int, int]

    @property
    def is_original(self) -> bool:
        width, height = self.source_size
        return self.size == (width, height) and self.box == (0, 0, width, height)

    @property
    def scale_factor(self) -> float:
        """Output pixels per source pixel (at most 1: never an upscale)."""
        return self.size[0] / max(self.box[2] - self.box[0], 1e-9)


def _area(size: ThumbnailSize) -> int:
    return size.width * size.height


def _fit_aspect(width: int, height: int, aspect_w: int, aspect_h: int) -> tuple[int, int]:
    """The largest `aspect_w:aspect_h` rectangle inside `width x height`."""
    if width * aspect_h > height * aspect_w:
        return max(1, round(height * aspect_w / aspect_h)), height
    return width, max(1, round(width * aspect_h / aspect_w))


def _configured_box(
    width: int, height: int, method: Method, sizes: Sequence[ThumbnailSize]
) -> tuple[int, int]:
    """The configured size for a request: exact match, else the smallest that covers it, else
    the largest (the operator's bound on thumbnail work). Sizes of the same method win."""
    same_method = [s for s in sizes if s.method in (None, method)] or list(sizes)
    for size in same_method:
        if (size.width, size.height) == (width, height):
            return width, height
    for pool in (same_method, sizes):
        covering = [s for s in pool if s.width >= width and s.height >= height]
        if covering:
            best = min(covering, key=_area)
            return best.width, best.height
    largest = max(sizes, key=_area)
    return largest.width, largest.height


def snap(
    width: int, height: int, method: Method, sizes: Sequence[ThumbnailSize], dynamic: bool
) -> Target:
    """The target for a request of `width x height` (both >= 1) with `method`.

    With `dynamic` the request itself is the target, bounded by the largest configured size;
    otherwise it snaps to a configured size. A crop target keeps the requested aspect ratio.
    """
    if not sizes:
        raise ValueError("thumbnails.sizes must not be empty")
    if dynamic:
        largest = max(sizes, key=_area)
        box = (min(width, largest.width), min(height, largest.height))
    else:
        box = _configured_box(width, height, method, sizes)
    if method == "crop":
        box = _fit_aspect(box[0], box[1], width, height)
    return Target(box[0], box[1], method)


def _whole(width: int, height: int) -> tuple[float, float, float, float]:
    return (0, 0, width, height)


def _centred(
    width: int, height: int, keep_w: float, keep_h: float
) -> tuple[float, float, float, float]:
    left = (width - keep_w) / 2
    top = (height - keep_h) / 2
    return (left, top, left + keep_w, top + keep_h)


def plan(source_width: int, source_height: int, target: Target) -> ResizePlan:
    """How a `source_width x source_height` image (as displayed) becomes `target`."""
    if source_width < 1 or source_height < 1:
        raise ValueError("an image has at least one pixel")
    source = (source_width, source_height)
    whole = _whole(source_width, source_height)
    if source_width <= target.width and source_height <= target.height:
        return ResizePlan(source, whole, source)
    if target.method == "scale":
        factor = min(target.width / source_width, target.height / source_height)
        size = (max(1, round(source_width * factor)), max(1, round(source_height * factor)))
        return ResizePlan(source, whole, size)
    return _crop_plan(source_width, source_height, target)


def _crop_plan(source_width: int, source_height: int, target: Target) -> ResizePlan:
    source = (source_width, source_height)
    cover = max(target.width / source_width, target.height / source_height)
    if cover <= 1:
        # Big enough both ways: scale to cover the target, keep its centre.
        keep_w, keep_h = target.width / cover, target.height / cover
        box = _centred(source_width, source_height, keep_w, keep_h)
        return ResizePlan(source, box, (target.width, target.height))
    # Smaller than the target one way: cut the target's aspect ratio out at the source's own
    # scale, since growing the short side would be an upscale.
    keep_w, keep_h = _fit_aspect(source_width, source_height, target.width, target.height)
    box = _centred(source_width, source_height, keep_w, keep_h)
    return ResizePlan(source, box, (keep_w, keep_h))


def decode_hint(source_width: int, source_height: int, resize: ResizePlan) -> tuple[int, int]:
    """The smallest decoded size from which `resize` still loses no detail.

    Codecs that can decode at a reduced scale (JPEG's DCT scaling) go no smaller than this.
    """
    factor = min(resize.scale_factor, 1.0)
    return (max(1, math.ceil(source_width * factor)), max(1, math.ceil(source_height * factor)))
