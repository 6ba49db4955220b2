"""In a thumbnail worker process: what an image or audio file tells about itself (the media
info endpoint's dimensions, duration and channels). Parsing untrusted files runs here, under
the workers' memory and time limits."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def probe(path: str, content_type: str, image_formats: tuple[str, ...]) -> dict[str, Any]:
    """In a worker: the fields the file itself tells (nothing when it cannot be parsed)."""
    try:
        if content_type.startswith("image/"):
            return _image_fields(path, image_formats)
        if content_type.startswith("audio/"):
            return _audio_fields(path)
    except Exception as exc:  # untrusted input: a file that does not parse just says less
        log.debug("media info: cannot parse %s as %s: %s", path, content_type, exc)
    return {}


def _image_fields(path: str, image_formats: tuple[str, ...]) -> dict[str, Any]:
    from PIL import Image

    import services.thumbnail.worker.decoders  # noqa: F401  (HEIF and AVIF openers, decoder settings)

    # Only the decoders the operator's thumbnails.types allow; the header only, no pixels.
    with Image.open(path, formats=list(image_formats)) as image:
        width, height = image.size
    return {"width": width, "height": height}


def _audio_fields(path: str) -> dict[str, Any]:
    import av

    with av.open(path) as container:
        stream = next(s for s in container.streams if s.type == "audio")
        fields: dict[str, Any] = {}
        if container.duration:
            fields["duration"] = container.duration / 1_000_000  # av.time_base: microseconds
        channels = getattr(stream.codec_context, "channels", None) or getattr(
            getattr(stream.codec_context, "layout", None), "nb_channels", None)
        if channels:
            fields["num_channels"] = int(channels)
        if stream.frames:
            fields["num_total_samples"] = int(stream.frames)
    return fields
