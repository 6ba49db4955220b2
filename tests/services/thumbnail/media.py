"""Real media made by the tests: every source format, EXIF orientations, animations, hostile
files, and video and audio encoded with PyAV."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction

import av
import pillow_heif
from PIL import Image, ImageDraw

pillow_heif.register_heif_opener()

ORIENTATION_TAG = 0x0112
GPS_IFD = 0x8825


def picture(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A picture whose corners differ, so orientation and crops can be checked by colour.

    Top-left red, top-right green, bottom-left blue, bottom-right yellow, grey centre.
    """
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    w, h = width // 2, height // 2
    for box, colour in (((0, 0, w, h), (255, 0, 0)), ((w, 0, width, h), (0, 255, 0)),
                        ((0, h, w, height), (0, 0, 255)), ((w, h, width, height), (255, 255, 0))):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
    return image.convert(mode)


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def jpeg(width: int = 400, height: int = 300, **options: object) -> bytes:
    return encode(picture(width, height), "JPEG", quality=90, **options)


def png(width: int = 400, height: int = 300, transparent: bool = False) -> bytes:
    image = picture(width, height, "RGBA")
    if transparent:
        image.putalpha(Image.linear_gradient("L").resize((width, height)))
    return encode(image, "PNG")


def jpeg_with_orientation(orientation: int, width: int = 400, height: int = 200) -> bytes:
    """A JPEG stored so that applying `orientation` shows `picture(width, height)` upright."""
    upright = picture(width, height)
    undo = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180],
        4: [Image.Transpose.FLIP_TOP_BOTTOM], 5: [Image.Transpose.TRANSPOSE],
        6: [Image.Transpose.ROTATE_90], 7: [Image.Transpose.TRANSVERSE],
        8: [Image.Transpose.ROTATE_270],
    }
    stored = upright
    for step in undo.get(orientation, []):
        stored = stored.transpose(step)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def jpeg_with_private_metadata(width: int = 400, height: int = 300) -> bytes:
    """GPS coordinates, a camera make, a comment and an ICC profile."""
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(picture(width, height), "JPEG", exif=exif.tobytes(), comment=b"at home",
                  icc_profile=icc)


def frames(count: int, width: int, height: int) -> list[Image.Image]:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    return [Image.new("RGB", (width, height), colours[i % len(colours)]) for i in range(count)]


def animated(image_format: str, count: int = 4, width: int = 200, height: int = 150) -> bytes:
    """An animated GIF, APNG ("PNG") or WebP."""
    first, *rest = frames(count, width, height)
    return encode(first, image_format, save_all=True, append_images=rest, duration=80, loop=0)


def declared_huge_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims `width x height` pixels, in a few hundred bytes.

    The pixel data is a tiny zlib stream of zeros: any decoder that trusts the header and
    allocates the whole picture would need gigabytes.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def big_solid_png(width: int, height: int) -> bytes:
    """A real, valid PNG of many pixels that compresses to almost nothing (a decompression bomb
    within the pixel limit, for memory-limit tests)."""
    return encode(Image.new("L", (width, height), 0), "PNG", optimize=False, compress_level=9)


def video(container_format: str, codec: str, width: int = 320, height: int = 240,
          count: int = 24) -> bytes:
    """A one-second clip whose frames go red, green, blue, ... (24 frames at 24 fps)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 24)
        for index, image in enumerate(frames(count, width, height)):
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def _mp3_audio(seconds: float = 0.5) -> bytes:
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=44100)
        samples = int(44100 * seconds)
        frame = av.AudioFrame(format="s16p", layout="mono", samples=samples)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.rate = 44100
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def mp3_with_cover(cover: bytes | None) -> bytes:
    """An MP3 whose ID3v2.3 tag carries `cover` (a JPEG) as its front-cover APIC frame."""
    audio = _mp3_audio()
    if cover is None:
        return audio
    body = b"\x00" + b"image/jpeg\x00" + b"\x03" + b"\x00" + cover
    frame = b"APIC" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame + audio


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def colour_at(image: Image.Image, x: float, y: float) -> tuple[int, int, int]:
    """The RGB colour at fractional position (x, y) of the picture."""
    rgb = image.convert("RGB")
    pixel = rgb.getpixel((int(x * (rgb.width - 1)), int(y * (rgb.height - 1))))
    assert isinstance(pixel, tuple)
    return (pixel[0], pixel[1], pixel[2])


def near(actual: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))
