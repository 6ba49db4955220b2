"""Making one thumbnail, inside a worker process: decode, orient, resize, encode.

`render_thumbnail(job)` is the only entry point. It reads the source file, writes the thumbnail
next to the job's other temp files and returns what it wrote. Output carries no metadata: EXIF
(GPS included), XMP, comments and ICC profiles are dropped, colours converted to sRGB first.
Still thumbnails are PNG when transparency must survive and JPEG otherwise; animated ones WebP.
"""

from __future__ import annotations

import io
import os
import tempfile

from PIL import Image, ImageCms, ImageSequence

from services.thumbnail.sizing import ResizePlan, decode_hint, plan
from services.thumbnail.worker.decoders import cover_art, guarded, open_image, video_frame
from services.thumbnail.worker.formats import family
from services.thumbnail.worker.jobs import ThumbnailJob, ThumbnailOutput, UnsupportedMedia

ORIENTATION_TAG = 0x0112
TRANSPOSE_FOR_ORIENTATION: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SERVABLE_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
"""Formats every client displays: a source of one of these that needs no change is the thumbnail."""
METADATA_KEYS = frozenset({"exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment"})
MAX_ANIMATED_FRAMES = 500
"""Frames kept in an animated thumbnail; longer animations are cut (the worker limits still hold)."""
DEFAULT_FRAME_MS = 100
JPEG_QUALITY = 80
WEBP_QUALITY = 80
REDUCING_GAP = 3.0
"""Shrink by whole factors first (fast box filter), keeping 3x for the final Lanczos pass."""


def render_thumbnail(job: ThumbnailJob) -> ThumbnailOutput:
    """The worker's entry point: one thumbnail of `job.source_path` at `job.target`."""
    kind = family(job.content_type)
    if kind == "image":
        with open_image(job.source_path, job.image_formats, job.max_pixels) as image:
            return _from_image(image, job)
    if kind == "video":
        return _encode_still(video_frame(job.source_path, job.max_pixels, job.still_frame), job)
    if kind == "audio":
        return _encode_still(cover_art(job.source_path, job.image_formats, job.max_pixels), job)
    raise UnsupportedMedia(f"Thumbnails of {job.content_type} are not supported")


def _orientation(image: Image.Image) -> int:
    value = guarded(lambda: image.getexif().get(ORIENTATION_TAG, 1))
    return value if isinstance(value, int) and value in TRANSPOSE_FOR_ORIENTATION else 1


def _swaps_axes(orientation: int) -> bool:
    return orientation in (5, 6, 7, 8)


def _displayed_size(image: Image.Image, orientation: int) -> tuple[int, int]:
    return (image.height, image.width) if _swaps_axes(orientation) else image.size


def _oriented(image: Image.Image, orientation: int) -> Image.Image:
    transpose = TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return image.transpose(transpose) if transpose is not None else image


def _has_metadata(image: Image.Image) -> bool:
    if METADATA_KEYS & set(image.info):
        return True
    # PNG text chunks (tEXt/iTXt) may carry anything, e.g. an author or a location.
    return bool(guarded(lambda: getattr(image, "text", None)))


def _is_animated(image: Image.Image) -> bool:
    return bool(getattr(image, "is_animated", False))


def _servable_as_is(image: Image.Image, orientation: int, animated: bool) -> bool:
    return (
        image.format in SERVABLE_AS_IS
        and orientation == 1
        and (animated or not _is_animated(image))
        and not _has_metadata(image)
    )


def _from_image(image: Image.Image, job: ThumbnailJob) -> ThumbnailOutput:
    orientation = _orientation(image)
    width, height = _displayed_size(image, orientation)
    resize = plan(width, height, job.target)
    animated = job.animated and _is_animated(image)
    if resize.is_original and _servable_as_is(image, orientation, animated):
        content_type = SERVABLE_AS_IS[image.format or ""]
        return ThumbnailOutput(None, content_type, width, height, animated)
    if animated:
        return _encode_animated(image, orientation, job)
    return _encode_still(_decode_still(image, orientation, resize, job), job)


def _decode_still(
    image: Image.Image, orientation: int, resize: ResizePlan, job: ThumbnailJob
) -> Image.Image:
    """The displayed still picture, decoded at the smallest scale the codec offers that still
    has every pixel the thumbnail needs (JPEG: 1/2, 1/4 or 1/8 with DCT scaling)."""
    if _is_animated(image):
        index = int((getattr(image, "n_frames", 1) - 1) * job.still_frame)
        guarded(lambda: image.seek(index))
    elif image.format == "JPEG":
        hint = decode_hint(*resize.source_size, resize)
        guarded(lambda: image.draft(None, hint[::-1] if _swaps_axes(orientation) else hint))
    guarded(image.load)
    return _oriented(image, orientation)


def _resized(image: Image.Image, target_plan: ResizePlan) -> Image.Image:
    if target_plan.is_original:
        return image
    return image.resize(
        target_plan.size, Image.Resampling.LANCZOS, box=target_plan.box, reducing_gap=REDUCING_GAP
    )


def _resizable(image: Image.Image) -> Image.Image:
    """A mode Lanczos can resize without mangling: palettes expanded, odd depths narrowed."""
    if image.mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return image
    if image.mode in ("P", "PA"):
        alpha = image.mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if alpha else "RGB")
    if image.mode in ("1", "I;16", "I;16B", "I;16L", "I", "F"):
        return image.convert("L") if image.mode == "1" else image.convert("I").point(
            lambda value: value / 256
        ).convert("L")
    return image.convert("RGBA" if "A" in image.mode else "RGB")


def _srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Pixels converted to sRGB (CMYK to RGB too), so dropping the profile keeps the colours."""
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            mode = "RGB" if image.mode == "CMYK" else image.mode
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode=mode
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # An unusable profile: keep the pixels as they are.
    return image.convert("RGB") if image.mode == "CMYK" else image


def _opaque(image: Image.Image) -> Image.Image:
    """Drop an alpha channel that hides nothing, so the thumbnail can be a (smaller) JPEG."""
    if image.mode not in ("RGBA", "LA"):
        return image
    low, _ = image.getchannel("A").getextrema()
    if isinstance(low, int | float) and low < 255:
        return image
    return image.convert("RGB" if image.mode == "RGBA" else "L")


def _encode_still(picture: Image.Image, job: ThumbnailJob) -> ThumbnailOutput:
    icc_profile = picture.info.get("icc_profile")
    resized = _resized(_resizable(picture), plan(picture.width, picture.height, job.target))
    final = _opaque(_srgb(resized, icc_profile))
    final.info = {}  # nothing of the source's metadata may reach the file
    if final.mode in ("RGBA", "LA"):
        path = _save(final, job.output_dir, "PNG", compress_level=6)
        content_type = "image/png"
    else:
        path = _save(final, job.output_dir, "JPEG", quality=JPEG_QUALITY, optimize=True)
        content_type = "image/jpeg"
    return ThumbnailOutput(path, content_type, final.width, final.height, animated=False)


def _encode_animated(image: Image.Image, orientation: int, job: ThumbnailJob) -> ThumbnailOutput:
    frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in guarded(lambda: ImageSequence.Iterator(image)):
        if len(frames) >= MAX_ANIMATED_FRAMES:
            break
        rgba = _oriented(_rgba(frame), orientation)
        frames.append(_resized(rgba, plan(rgba.width, rgba.height, job.target)))
        durations.append(int(frame.info.get("duration") or DEFAULT_FRAME_MS))
    first = frames[0]
    first.info = {}
    path = _save(
        first, job.output_dir, "WEBP", save_all=True, append_images=frames[1:], duration=durations,
        loop=int(image.info.get("loop", 0) or 0), quality=WEBP_QUALITY, method=4,
    )
    return ThumbnailOutput(path, "image/webp", first.width, first.height, animated=len(frames) > 1)


def _rgba(frame: Image.Image) -> Image.Image:
    return guarded(lambda: frame.convert("RGBA"))


def _save(image: Image.Image, output_dir: str, image_format: str, **options: object) -> str:
    """Write into the job's temp folder; the service stores and then deletes the file."""
    fd, path = tempfile.mkstemp(prefix="thumb-", suffix=f".{image_format.lower()}", dir=output_dir)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=image_format, **options)
    except BaseException:
        os.unlink(path)
        raise
    return path
