"""The image served instead of a thumbnail of quarantined media (`quarantine.replaceThumbnails`).

Drawn with Pillow at the size asked for, or made from the operator's `quarantine.thumbnailPath`
image, so the repository ships no binary asset.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont, ImageOps

BACKGROUND = (64, 64, 64)
FOREGROUND = (230, 230, 230)
LABEL = "Quarantined"
CONTENT_TYPE = "image/png"


def _drawn(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    inset = max(1, min(width, height) // 8)
    # A "no entry" sign: a ring with a bar, readable even at 32x32.
    side = min(width, height) - 2 * inset
    if side > 4:
        left, top = (width - side) // 2, (height - side) // 2
        ring = max(1, side // 10)
        draw.ellipse((left, top, left + side, top + side), outline=FOREGROUND, width=ring)
        bar = (left + ring * 2, top + side // 2 - ring, left + side - ring * 2, top + side // 2 + ring)
        draw.rectangle(bar, fill=FOREGROUND)
    if width >= 96 and height >= 96:
        font = ImageFont.load_default(size=max(10, width // 12))
        text_width = draw.textlength(LABEL, font=font)
        draw.text(((width - text_width) / 2, height - inset), LABEL, fill=FOREGROUND, font=font,
                  anchor="ls")
    return image


def _from_file(path: str, width: int, height: int) -> Image.Image:
    with Image.open(path) as source:
        return ImageOps.fit(ImageOps.exif_transpose(source).convert("RGB"), (width, height))


@lru_cache(maxsize=64)
def placeholder_png(width: int, height: int, image_path: str = "") -> bytes:
    """A PNG of exactly `width x height` (callers bound the size)."""
    image = _from_file(image_path, width, height) if image_path else _drawn(width, height)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
