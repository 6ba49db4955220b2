"""Re-hosting a preview image as local media owned by the user who asked for the preview."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from shared.media.store import MediaWrite, store_media
from shared.runtime import Runtime
from shared.storage.spool import SpooledFile


def image_dimensions(path: Path) -> tuple[int, int] | None:
    """Width and height from the image header (nothing is decoded), or None if unreadable."""
    try:
        with warnings.catch_warnings():
            # A huge declared size is only a number here; nothing is decompressed.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return int(image.width), int(image.height)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


async def store_image(
    rt: Runtime, spooled: SpooledFile, content_type: str, server_name: str, user_id: str,
    filename: str | None,
) -> dict[str, Any]:
    """Store the image as the user's local media, like an upload (their quota holds, quarantined
    bytes are refused); return its og:image keys."""
    dimensions = await asyncio.to_thread(image_dimensions, spooled.path)
    write = MediaWrite(kind="local", origin=server_name, content_type=content_type,
                       filename=filename, user_id=user_id)
    record = await store_media(rt, write, spooled)
    keys: dict[str, Any] = {
        "og:image": record.mxc,
        "og:image:type": content_type,
        "matrix:image:size": spooled.size_bytes,
    }
    if dimensions is not None:
        keys["og:image:width"], keys["og:image:height"] = dimensions
    return keys
