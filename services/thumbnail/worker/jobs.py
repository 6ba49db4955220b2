"""What the service asks a worker process to do, and what it gets back: plain picklable values
(the pipe between the processes carries them), and no image library imports."""

from __future__ import annotations

from dataclasses import dataclass

from services.thumbnail.sizing import Target


class ThumbnailFailure(Exception):
    """The source cannot be thumbnailed. The message is safe to show to the client."""


class UnsupportedMedia(ThumbnailFailure):
    """No decoder for this content (or it is not allowed to be decoded)."""


class CorruptMedia(ThumbnailFailure):
    """The file is truncated, corrupt or crafted: the decoder refused it."""


class SourceTooLarge(ThumbnailFailure):
    """Decoding would exceed `thumbnails.maxPixels` (checked from the header, before decoding)."""


@dataclass(frozen=True)
class ThumbnailJob:
    """Make one thumbnail of the file at `source_path`, writing it into `output_dir`."""

    source_path: str
    content_type: str
    output_dir: str
    target: Target
    animated: bool
    max_pixels: int
    still_frame: float
    # Pillow format names this deployment lets a worker decode (from `thumbnails.types`).
    image_formats: tuple[str, ...]


@dataclass(frozen=True)
class ThumbnailOutput:
    """A finished thumbnail. `path` is None when the source itself is the thumbnail."""

    path: str | None
    content_type: str
    width: int
    height: int
    animated: bool


EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
"""The content types a thumbnail can have (the spec's list, less APNG, which is served as PNG)."""
