"""Identicons: the default avatars of `GET /_matrix/media/r0/identicon/{seed}`, drawn the way
matrix-media-repo draws them (the Sigil scheme), so a user keeps the same picture.

The MD5 of the seed decides everything: its first byte picks one of seven colours, the next
bits fill cells of a 5x5 grid (three columns, the first two mirrored onto the last two) on a
light grey ground with half a cell of margin. MMR hashes the route's catch-all parameter, which
begins with the `/` before the seed, so the hash here does too.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageDraw

ROWS = 5
BACKGROUND = (224, 224, 224)
FOREGROUND = (
    (45, 79, 255), (254, 180, 44), (226, 121, 234), (30, 179, 253),
    (232, 77, 65), (49, 203, 115), (141, 69, 170),
)
DEFAULT_SIZE = 96
MIN_SIZE, MAX_SIZE = 96, 512


def clamp(size: int) -> int:
    return max(MIN_SIZE, min(MAX_SIZE, size))


@dataclass(frozen=True)
class Identicon:
    png: bytes
    digest_hex: str


def _filled(bits: bytes, index: int) -> bool:
    return bool(bits[index // 8] >> (7 - index % 8) & 1)


def _cells(width: int, bits: bytes) -> list[tuple[int, int, int, int]]:
    """Rectangles (left, top, right, bottom; exclusive) of the foreground cells."""
    cell = width // (ROWS + 1)
    columns = ROWS // 2 + ROWS % 2
    margin = cell // 2
    rects = []
    for index in range(columns * ROWS):
        if not _filled(bits, index):
            continue
        column, row = divmod(index, ROWS)
        top = margin + row * cell
        for col in {column, ROWS - column - 1}:  # the middle column mirrors onto itself
            left = margin + col * cell
            rects.append((left, top, left + cell, top + cell))
    return rects


def draw(seed: str, width: int, height: int) -> Identicon:
    """A PNG of `width` x `height` (each clamped to 96..512) for `seed` (CPU: run off the loop)."""
    width, height = clamp(width), clamp(height)
    digest = hashlib.md5(("/" + seed).encode(), usedforsecurity=False).digest()
    image = Image.new("RGB", (width, width), BACKGROUND)
    pen = ImageDraw.Draw(image)
    colour = FOREGROUND[digest[0] % len(FOREGROUND)]
    for left, top, right, bottom in _cells(width, digest[1:]):
        pen.rectangle((left, top, right - 1, bottom - 1), fill=colour)
    if height != width:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return Identicon(out.getvalue(), digest.hex())
