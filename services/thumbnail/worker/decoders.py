"""Opening sources inside a worker process: Pillow (plus pillow-heif) for images, PyAV for video
frames and audio cover art.

Every decoder is attack surface, so images are opened only with the Pillow formats the operator's
`thumbnails.types` allow (Synapse's reasoning: each decoder joins the trusted computing base), and
every size is checked against `thumbnails.maxPixels` from the header, before a pixel is decoded.
Whatever a decoder raises on a hostile file becomes `CorruptMedia` (a 400), not a crash.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import av
import av.container
import pillow_heif
from av.stream import Disposition
from PIL import Image, ImageFile, UnidentifiedImageError

from services.thumbnail.worker.jobs import CorruptMedia, SourceTooLarge, ThumbnailFailure, UnsupportedMedia

pillow_heif.register_heif_opener()
# A truncated file is an error, never a half-grey thumbnail.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# The explicit `check_pixels` below is the limit; Pillow's own bomb check would only warn at 1x.
Image.MAX_IMAGE_PIXELS = None

T = TypeVar("T")


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise CorruptMedia("The media declares an empty picture")
    if width * height > max_pixels:
        raise SourceTooLarge(
            f"The media is {width}x{height} pixels, over the limit of {max_pixels} for thumbnailing"
        )


def guarded(action: Callable[[], T]) -> T:
    """Run a decoding step: hostile input may make a decoder raise anything, which is a 400.

    `MemoryError` passes through: the worker pool retires a worker that ran out of memory.
    """
    try:
        return action()
    except (ThumbnailFailure, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise SourceTooLarge("The media is too large to thumbnail") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMedia("The media is not an image this server can thumbnail") from exc
    except Exception as exc:
        raise CorruptMedia(f"The media could not be decoded ({type(exc).__name__})") from exc


def open_image(source: str | io.BytesIO, formats: tuple[str, ...], max_pixels: int) -> Image.Image:
    """Open (header only) with an allowed decoder and check its size; pixels load later."""
    image = guarded(lambda: Image.open(source, formats=list(formats)))
    check_pixels(image.width, image.height, max_pixels)
    return image


@contextmanager
def _container(path: str) -> Iterator[av.container.InputContainer]:
    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise CorruptMedia("The media could not be opened as audio or video") from exc
    try:
        yield container
    finally:
        container.close()


def _is_cover(stream: Any) -> bool:
    return bool(stream.disposition & Disposition.attached_pic)


MAX_FRAMES_AFTER_SEEK = 120
"""Frames decoded from the keyframe before the wanted moment towards it, at most."""


def _wanted_pts(container: av.container.InputContainer, stream: Any, fraction: float) -> int | None:
    """The presentation time `fraction` of the way through, in the stream's time base."""
    start = stream.start_time or 0
    if stream.duration and stream.time_base:
        return int(stream.duration * fraction) + start
    if container.duration and stream.time_base:
        seconds = container.duration * fraction / av.time_base
        return int(seconds / stream.time_base) + start
    return None


def _upright(frame: Any) -> Image.Image:
    image: Image.Image = frame.to_image()
    rotation = getattr(frame, "rotation", 0) or 0
    # The display matrix turns counter-clockwise; PIL's rotate does too.
    return image.rotate(rotation, expand=True) if rotation % 360 else image


def _picture_at(
    container: av.container.InputContainer, stream: Any, wanted: int | None, max_pixels: int
) -> Image.Image:
    """The frame at `wanted` (or the first one), decoding forward from the keyframe before it."""
    if wanted is not None:
        container.seek(wanted, stream=stream, backward=True, any_frame=False)
    chosen = None
    for count, frame in enumerate(container.decode(stream)):
        check_pixels(frame.width, frame.height, max_pixels)
        chosen = frame
        reached = wanted is None or frame.pts is None or frame.pts >= wanted
        if reached or count >= MAX_FRAMES_AFTER_SEEK:
            break
    if chosen is None:
        raise CorruptMedia("The video has no decodable frame")
    return _upright(chosen)


def video_frame(path: str, max_pixels: int, fraction: float) -> Image.Image:
    """A representative still of the first video stream, `fraction` of the way through."""

    def decode() -> Image.Image:
        with _container(path) as container:
            stream = next((s for s in container.streams.video if not _is_cover(s)), None)
            if stream is None:
                raise UnsupportedMedia("The media has no video to thumbnail")
            context = stream.codec_context
            check_pixels(context.width or 1, context.height or 1, max_pixels)
            # One frame is wanted: decoder threads would only add memory (and address space).
            context.thread_count = 1
            try:
                return _picture_at(container, stream, _wanted_pts(container, stream, fraction),
                                   max_pixels)
            except CorruptMedia:
                container.seek(0)
                return _picture_at(container, stream, None, max_pixels)

    return guarded(decode)


def cover_art(path: str, formats: tuple[str, ...], max_pixels: int) -> Image.Image:
    """The picture embedded in an audio file (ID3 APIC, MP4 covr, FLAC PICTURE), loaded."""

    def extract() -> bytes:
        with _container(path) as container:
            for stream in container.streams.video:
                if _is_cover(stream):
                    for packet in container.demux(stream):
                        if packet.size:
                            return bytes(packet)
        raise UnsupportedMedia("This audio has no cover art to thumbnail")

    data = guarded(extract)
    image = open_image(io.BytesIO(data), formats, max_pixels)
    guarded(image.load)
    return image
