"""What the worker pool's forkserver imports (its preload) before it forks any worker.

Importing the renderer loads Pillow, pillow-heif and PyAV; Pillow still loads its format plugins,
codecs and colour-management engine on first use. Doing that first use here, once, means every
worker forked from the forkserver starts with all of it loaded and shared, so the first
thumbnail after a start costs what any other does. Importing this module is the warm-up, so
only the forkserver imports it (by name: `WARM_MODULE` in `services.thumbnail.context`).
"""

from __future__ import annotations

import io

from PIL import Image, ImageCms

from services.thumbnail.worker import render

WARM_FORMATS = ("JPEG", "PNG", "WEBP")


def warm_up() -> None:
    """Encode, decode (JPEG at a reduced scale, as thumbnails of photos are), resize and
    colour-convert a tiny picture in each output format."""
    Image.init()
    picture = Image.new("RGB", (64, 48), (200, 120, 40))
    for image_format in WARM_FORMATS:
        encoded = io.BytesIO()
        picture.save(encoded, format=image_format)
        encoded.seek(0)
        with Image.open(encoded, formats=[image_format]) as decoded:
            decoded.draft("RGB", (16, 12))
            decoded.load()
            decoded.resize((8, 6), Image.Resampling.LANCZOS, reducing_gap=render.REDUCING_GAP)
    srgb = ImageCms.createProfile("sRGB")
    ImageCms.profileToProfile(picture, srgb, srgb, outputMode="RGB")


warm_up()
