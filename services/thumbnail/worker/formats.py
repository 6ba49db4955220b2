"""Which content types can be thumbnailed, and by which decoder. No decoder is imported here."""

from __future__ import annotations

from collections.abc import Iterable

from shared.matrix.disposition import media_type

IMAGE_FORMATS: dict[str, str] = {
    "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG",
    "image/png": "PNG", "image/apng": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/bmp": "BMP", "image/x-bmp": "BMP", "image/x-ms-bmp": "BMP",
    "image/tiff": "TIFF",
    "image/heif": "HEIF", "image/heic": "HEIF", "image/heif-sequence": "HEIF",
    "image/heic-sequence": "HEIF",
    "image/avif": "AVIF",
}
"""Content type -> the Pillow decoder for it. SVG has none on purpose: it is never rasterised."""

VIDEO_TYPES = frozenset({
    "video/mp4", "video/webm", "video/quicktime", "video/x-matroska", "video/ogg", "video/mpeg",
    "video/3gpp", "video/x-m4v",
})
"""Containers a representative frame is taken from (still thumbnails only)."""


def family(content_type: str) -> str | None:
    """"image", "video" or "audio" for a type some decoder handles, else None."""
    if content_type in IMAGE_FORMATS:
        return "image"
    if content_type in VIDEO_TYPES:
        return "video"
    if content_type.startswith("audio/"):
        return "audio"
    return None


def thumbnailable(content_type: str, configured_types: Iterable[str]) -> bool:
    """Listed in `thumbnails.types` AND handled by a decoder: both are needed."""
    return family(content_type) is not None and content_type in {media_type(t) for t in configured_types}


def image_decoders(configured_types: Iterable[str]) -> tuple[str, ...]:
    """The Pillow formats a worker may use: those of the configured image types.

    Audio cover art is a JPEG or PNG inside the file, so audio types allow those two.
    """
    types = {media_type(t) for t in configured_types}
    formats = {IMAGE_FORMATS[t] for t in types if t in IMAGE_FORMATS}
    if any(t.startswith("audio/") for t in types):
        formats |= {"JPEG", "PNG"}
    return tuple(sorted(formats))
