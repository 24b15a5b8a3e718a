"""Tutor profile photos: check an upload by its content and re-encode it into safe renditions.

Pure and I/O-free: bytes in, :class:`ProcessedPhoto` out, or :class:`PhotoError` with a stable
``code`` (the web layer maps codes to translated messages; no user-facing text lives here).
CPU-bound (decoding up to ``MAX_PIXELS``), so async callers should run it in a worker thread.

Decisions:

- **Content, not name.** The type comes from the bytes: Pillow opens the data restricted to
  JPEG, PNG, WebP and GIF, ``verify()`` checks the structure, and a fresh open decodes every pixel
  (so truncated files fail). Anything else is ``not_an_image`` (SVG, HTML, PDF, ZIP, text...) or,
  when the signature is a raster format we do not take (HEIC/AVIF, TIFF, BMP...),
  ``unsupported_format`` with ``format=`` so the message can say "export it as JPEG".
- **Animation.** Animated GIF, WebP and PNG (APNG) are refused (``animated``); their static
  variants are accepted. An MPO file (a JPEG carrying extra stereo/depth/preview pictures, as some
  cameras write) is a JPEG: its primary picture is used.
- **Polyglots / trailing data.** The output is always re-encoded from decoded pixels, so nothing
  after the image's end marker (a ZIP, an HTML/script payload), no comment and no metadata block
  can reach it. Trailing bytes are *not* a reason to refuse: phones append legitimate data after
  the JPEG end marker (motion-photo videos, maker trailers, several MB). Therefore callers must
  never store or serve the original upload; only the renditions. ``sha256`` of the original is for
  naming and de-duplication only.
- **Limits, cheapest first.** Empty, then ``MAX_UPLOAD_BYTES`` before any decoding, then the
  header's dimensions against ``MAX_PIXELS`` before ``load()`` (Pillow's own
  ``DecompressionBombError``, raised while reading headers for images beyond twice its global
  limit, maps to the same code), then the minimum edge. Pillow's global ``MAX_IMAGE_PIXELS`` and
  warning filters are left alone (process-wide, not thread-safe); since ``MAX_PIXELS`` is below
  Pillow's warning threshold, anything Pillow warns about (its ``DecompressionBombWarning`` may
  still be logged) is refused here right after. ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay
  False (the default) for truncated files to be refused. The web layer should also cap the
  request body size so huge uploads never reach memory.
- **Speed.** Large JPEGs are decoded at a reduced DCT scale (``draft``) and other large sources
  are box-reduced right after decoding, to no less than twice the largest rendition.
- **Orientation, colour, metadata.** EXIF orientation is applied, alpha is flattened onto white,
  16-bit grey is scaled to 8 bits, embedded ICC profiles (Display P3 from phones, Adobe RGB, CMYK)
  are converted to sRGB with LittleCMS (plain conversion when no usable profile), and the
  renditions are written without EXIF, XMP, ICC or comments (untagged = sRGB for browsers).
- **Renditions.** Square centre crops at ``RENDITION_SIZES`` (never upscaled: a 300 px source
  gives a 300 px "640" rendition) as WebP quality 82 (every current browser), plus one JPEG at
  ``JPEG_FALLBACK_SIZES`` for places where WebP is unreliable: e-mail clients and link previews.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from marketplace.errors import CodedError

__all__ = [
    "ACCEPTED_FORMATS",
    "JPEG",
    "JPEG_FALLBACK_SIZES",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "MIN_EDGE",
    "RENDITION_SIZES",
    "WEBP",
    "PhotoError",
    "ProcessedPhoto",
    "Rendition",
    "process_photo",
]

MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_EDGE = 200
RENDITION_SIZES = (96, 256, 640)
JPEG_FALLBACK_SIZES = (640,)
WEBP_QUALITY = 82
JPEG_QUALITY = 85

WEBP = "image/webp"
JPEG = "image/jpeg"
_EXTENSIONS = {WEBP: "webp", JPEG: "jpg"}

# Pillow format name -> our name. MPO is a JPEG with extra pictures (see module docstring).
ACCEPTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
_OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")

_WHITE = (255, 255, 255)
_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the picture by 90 degrees
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"}  # modes Image.reduce() accepts


class PhotoError(CodedError):
    """A refused photo. ``code`` is stable; ``params`` feed the translated message."""


@dataclass(frozen=True, slots=True)
class Rendition:
    size: int  # the nominal edge asked for (one of RENDITION_SIZES)
    width: int
    height: int
    content_type: str
    data: bytes

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.content_type]


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    sha256: str  # hex digest of the original upload
    source_format: str  # "jpeg" | "png" | "webp" | "gif"
    source_width: int  # after orientation was applied
    source_height: int
    renditions: tuple[Rendition, ...]

    def rendition(self, size: int, content_type: str = WEBP) -> Rendition:
        for item in self.renditions:
            if item.size == size and item.content_type == content_type:
                return item
        raise KeyError((size, content_type))

    def filename(self, rendition: Rendition) -> str:
        """A stable storage name: ``<sha256>-<size>.<ext>``."""
        return f"{self.sha256}-{rendition.size}.{rendition.extension}"


def process_photo(data: bytes) -> ProcessedPhoto:
    """Check ``data`` by content and return re-encoded, metadata-free square renditions."""
    if not data:
        raise PhotoError("empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise PhotoError("too_large", max_bytes=MAX_UPLOAD_BYTES, size=len(data))
    digest = hashlib.sha256(data).hexdigest()

    image = _open_checked(data)
    source_format = ACCEPTED_FORMATS[image.format or ""]
    source_width, source_height = image.size
    try:
        if image.getexif().get(_ORIENTATION, 1) in _SWAPPING_ORIENTATIONS:
            source_width, source_height = source_height, source_width
        _draft(image)
        image.load()
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # untrusted decoder input: any failure is an unreadable image
        raise PhotoError("not_an_image") from exc

    # Shrink very large sources early (box filter, exact multiples) so that the crop, colour
    # conversion and resampling below work on a few megapixels at most.
    factor = min(image.size) // (2 * max(RENDITION_SIZES))
    if factor >= 2:
        image = (image if image.mode in _REDUCIBLE_MODES else _flatten(image)).reduce(factor)
    side = min(image.size)
    left = (image.width - side) // 2
    top = (image.height - side) // 2
    square = _to_srgb(_flatten(image.crop((left, top, left + side, top + side))))
    square.info.clear()  # nothing from the source (EXIF, XMP, ICC, comments) travels on

    renditions: list[Rendition] = []
    for size in RENDITION_SIZES:
        edge = min(size, side)
        scaled = square if edge == side else square.resize((edge, edge), Image.Resampling.LANCZOS, reducing_gap=3.0)
        renditions.append(_encode(scaled, size, WEBP))
        if size in JPEG_FALLBACK_SIZES:
            renditions.append(_encode(scaled, size, JPEG))
    return ProcessedPhoto(
        sha256=digest,
        source_format=source_format,
        source_width=source_width,
        source_height=source_height,
        renditions=tuple(renditions),
    )


def _open_checked(data: bytes) -> Image.Image:
    """Identify, verify and reopen; check animation and dimensions before any pixel is decoded."""
    try:
        probe = Image.open(BytesIO(data), formats=_OPEN_FORMATS)
    except Image.DecompressionBombError as exc:
        raise PhotoError("too_many_pixels", max_pixels=MAX_PIXELS) from exc
    except UnidentifiedImageError as exc:
        other = _sniff_other_raster(data)
        if other:
            raise PhotoError("unsupported_format", format=other) from exc
        raise PhotoError("not_an_image") from exc
    except Exception as exc:
        raise PhotoError("not_an_image") from exc

    if probe.format not in ACCEPTED_FORMATS:  # defensive: a plugin factory returned another type
        raise PhotoError("unsupported_format", format=(probe.format or "unknown").lower())
    width, height = probe.size
    if width * height > MAX_PIXELS:
        raise PhotoError("too_many_pixels", max_pixels=MAX_PIXELS, width=width, height=height)
    if width < MIN_EDGE or height < MIN_EDGE:
        raise PhotoError("too_small", min_width=MIN_EDGE, min_height=MIN_EDGE, width=width, height=height)

    try:
        animated = probe.format != "MPO" and getattr(probe, "is_animated", False)  # reads frame headers only
        if not animated:
            probe.verify()
            return Image.open(BytesIO(data), formats=("JPEG",) if probe.format == "MPO" else (probe.format,))
    except Image.DecompressionBombError as exc:
        raise PhotoError("too_many_pixels", max_pixels=MAX_PIXELS) from exc
    except Exception as exc:
        raise PhotoError("not_an_image") from exc
    raise PhotoError("animated")


def _draft(image: Image.Image) -> None:
    """Let libjpeg decode large JPEGs at a reduced scale (still at least twice the largest edge)."""
    if image.format in ("JPEG", "MPO"):
        target = 2 * max(RENDITION_SIZES)
        image.draft(None, (target, target))


def _flatten(image: Image.Image) -> Image.Image:
    """Bring any decoded mode to L, RGB or CMYK; transparency is composited onto white."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":  # 16-bit / 32-bit grey: scale to 8 bits, do not clip
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode in ("L", "RGB", "CMYK"):
        return image
    if mode == "1":
        return image.convert("L")
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
    background.alpha_composite(rgba)
    return background.convert("RGB")


_SRGB = ImageCms.createProfile("sRGB")


def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(BytesIO(icc))
            converted = ImageCms.profileToProfile(
                image,
                source,
                _SRGB,
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
                outputMode="RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # broken or mismatched profile: fall back to a plain conversion
        if converted is not None:
            return converted
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, size: int, content_type: str) -> Rendition:
    buffer = BytesIO()
    if content_type == WEBP:
        image.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4, exif=b"", icc_profile=None)
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True, exif=b"")
    return Rendition(
        size=size, width=image.width, height=image.height, content_type=content_type, data=buffer.getvalue()
    )


_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _sniff_other_raster(data: bytes) -> str | None:
    """Name a raster format we recognise but do not accept, from its signature."""
    head = data[:32]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIF_BRANDS:
            return "heif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if (
        head.startswith(b"BM")
        and len(head) >= 18
        and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 108, 124)
    ):
        return "bmp"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "jxl"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jpeg2000"
    if head.startswith(b"8BPS"):
        return "psd"
    if head.startswith(b"\x00\x00\x01\x00"):
        return "ico"
    return None
