"""Tutor photo processing: content checks, limits, metadata stripping, colour, renditions.

Every input is generated here at run time; no binary fixtures are committed.
"""

from __future__ import annotations

import hashlib
import random
import resource
import struct
import sys
import time
import zipfile
import zlib
from io import BytesIO

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin

from marketplace.tutors import photos
from marketplace.tutors.photos import (
    JPEG,
    MAX_UPLOAD_BYTES,
    RENDITION_SIZES,
    WEBP,
    PhotoError,
    ProcessedPhoto,
    process_photo,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


# ---- generators ----------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def two_tone(size: tuple[int, int], first: tuple[int, int, int], second: tuple[int, int, int]) -> Image.Image:
    """Left half ``first``, right half ``second``."""
    image = Image.new("RGB", size, second)
    image.paste(first, (0, 0, size[0] // 2, size[1]))
    return image


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header claiming ``width`` x ``height`` 1-bit pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is patched to claim ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def opened(rendition_data: bytes) -> Image.Image:
    image = Image.open(BytesIO(rendition_data))
    image.load()
    return image


def close_to(pixel: tuple[int, ...], expected: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], expected, strict=True))


def refused(data: bytes) -> PhotoError:
    with pytest.raises(PhotoError) as info:
        process_photo(data)
    return info.value


def all_outputs(result: ProcessedPhoto) -> bytes:
    return b"".join(r.data for r in result.renditions)


# ---- accepted photos -----------------------------------------------------------------------


def test_jpeg_with_gps_and_orientation_gives_upright_square_renditions_without_metadata() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored on its side: viewers turn it 90 degrees clockwise
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (13.0, 24.0, 36.0),
    }
    original = encode(two_tone((1000, 700), RED, BLUE), "JPEG", exif=exif, comment=b"shot at home")
    assert Image.open(BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the input does carry GPS

    result = process_photo(original)

    assert result.source_format == "jpeg"
    assert (result.source_width, result.source_height) == (700, 1000)  # upright: portrait
    assert {(r.size, r.content_type) for r in result.renditions} == {
        *((size, WEBP) for size in RENDITION_SIZES),
        (640, JPEG),
    }
    for rendition in result.renditions:
        image = opened(rendition.data)
        assert image.format == {WEBP: "WEBP", JPEG: "JPEG"}[rendition.content_type]
        assert image.size == (rendition.width, rendition.height) == (rendition.size, rendition.size)
        assert image.mode == "RGB"
        assert not image.getexif()
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(image.info)
        for secret in (b"Exif", b"GPS", b"SecretCam", b"shot at home"):
            assert secret not in rendition.data
        # Turned clockwise, the stored left (red) half is on top and the right (blue) half below.
        edge = image.width
        assert close_to(image.getpixel((edge // 2, edge // 8)), RED)
        assert close_to(image.getpixel((edge // 2, edge - edge // 8)), BLUE)


def test_centre_crop_keeps_the_middle_of_a_wide_photo() -> None:
    image = Image.new("RGB", (900, 300), BLUE)
    image.paste(RED, (300, 0, 600, 300))  # the middle third is the square that must survive
    result = process_photo(encode(image, "PNG"))
    for rendition in result.renditions:
        out = opened(rendition.data)
        assert close_to(out.getpixel((2, 2)), RED)
        assert close_to(out.getpixel((out.width - 3, out.height - 3)), RED)


def test_small_sources_are_not_upscaled() -> None:
    result = process_photo(encode(noise((300, 320)), "PNG"))
    assert [(r.size, r.width) for r in result.renditions if r.content_type == WEBP] == [
        (96, 96),
        (256, 256),
        (640, 300),
    ]
    assert result.rendition(640, JPEG).width == 300


def transparent_with_black_square(kind: str) -> bytes:
    """A 400 px image: transparent background, opaque black square in the middle."""
    rgba = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (100, 100, 300, 300))
    if kind == "png-palette":
        palette = Image.new("P", (400, 400), 1)
        palette.putpalette([0, 0, 0, 90, 200, 40])  # index 0 black, index 1 green (made transparent)
        palette.paste(0, (100, 100, 300, 300))
        return encode(palette, "PNG", transparency=1, compress_level=1)
    if kind == "webp-rgba":
        return encode(rgba, "WEBP", lossless=True)
    if kind == "gif":
        return encode(Image.open(BytesIO(transparent_with_black_square("png-palette"))), "GIF")
    return encode(rgba.convert(kind.removeprefix("png-").upper()), "PNG")


@pytest.mark.parametrize("kind", ["png-rgba", "png-la", "png-palette", "webp-rgba", "gif"])
def test_transparency_is_flattened_onto_white(kind: str) -> None:
    result = process_photo(transparent_with_black_square(kind))
    for rendition in result.renditions:
        out = opened(rendition.data)
        assert out.mode == "RGB"
        assert close_to(out.getpixel((1, 1)), WHITE)
        assert close_to(out.getpixel((out.width // 2, out.height // 2)), BLACK)


def large_source(kind: str) -> bytes:
    """Sources big enough for the early-reduce path (shortest side over 2560 px)."""
    if kind == "png-palette":
        palette = Image.new("P", (2800, 2600), 1)
        palette.putpalette([0, 0, 0, 90, 200, 40])
        palette.paste(0, (1100, 1000, 1700, 1600))
        return encode(palette, "PNG", transparency=1, compress_level=1)
    if kind == "png-rgba":
        rgba = Image.new("RGBA", (2800, 2600), (0, 0, 0, 0))
        rgba.paste((0, 0, 0, 255), (1100, 1000, 1700, 1600))
        return encode(rgba, "PNG", compress_level=1)
    image = Image.new("RGB", (2800, 2600), WHITE)
    image.paste(BLACK, (1100, 1000, 1700, 1600))
    return encode(image, "JPEG")


@pytest.mark.parametrize("kind", ["png-palette", "png-rgba", "jpeg"])
def test_large_sources_are_reduced_with_the_same_result(kind: str) -> None:
    result = process_photo(large_source(kind))
    assert (result.source_width, result.source_height) == (2800, 2600)
    for rendition in result.renditions:
        out = opened(rendition.data)
        assert out.size == (rendition.size, rendition.size)
        assert close_to(out.getpixel((1, 1)), WHITE)
        assert close_to(out.getpixel((out.width // 2, out.height // 2)), BLACK)


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    cmyk = Image.new("CMYK", (400, 400), (0, 255, 255, 0))  # pure red in CMYK
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(BytesIO(data)).mode == "CMYK"
    for rendition in process_photo(data).renditions:
        out = opened(rendition.data)
        assert out.mode == "RGB"
        assert close_to(out.getpixel((out.width // 2, out.height // 2)), RED, tolerance=50)


def test_embedded_icc_profile_is_applied_and_not_kept() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(Image.new("RGB", (400, 400), (200, 120, 40)), "JPEG", quality=95, icc_profile=srgb)
    for rendition in process_photo(data).renditions:
        out = opened(rendition.data)
        assert "icc_profile" not in out.info
        assert close_to(out.getpixel((10, 10)), (200, 120, 40), tolerance=12)


def test_broken_icc_profile_falls_back_to_plain_conversion() -> None:
    data = encode(Image.new("RGB", (400, 400), (30, 160, 90)), "PNG", icc_profile=b"not a profile at all")
    for rendition in process_photo(data).renditions:
        assert close_to(opened(rendition.data).getpixel((10, 10)), (30, 160, 90), tolerance=12)


def test_sixteen_bit_grey_png_keeps_its_tones() -> None:
    grey = Image.new("I;16", (400, 400), 32768)  # mid grey on a 16-bit scale
    out = opened(process_photo(encode(grey, "PNG")).rendition(256).data)
    assert close_to(out.getpixel((5, 5)), (128, 128, 128), tolerance=6)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "JPEG"])
def test_static_images_in_accepted_formats_are_processed(fmt: str) -> None:
    result = process_photo(encode(two_tone((400, 400), RED, BLUE), fmt))
    assert result.source_format == fmt.lower()
    assert result.rendition(96).width == 96


def test_mpo_is_read_as_its_primary_jpeg_picture() -> None:
    data = encode(
        Image.new("RGB", (400, 400), RED), "MPO", save_all=True, append_images=[Image.new("RGB", (400, 400), BLUE)]
    )
    result = process_photo(data)
    assert result.source_format == "jpeg"
    assert close_to(opened(result.rendition(256).data).getpixel((5, 5)), RED)


def test_name_comes_from_the_sha256_of_the_original() -> None:
    data = encode(noise((300, 300)), "PNG")
    result = process_photo(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.filename(result.rendition(256)) == f"{result.sha256}-256.webp"
    assert result.filename(result.rendition(640, JPEG)) == f"{result.sha256}-640.jpg"
    with pytest.raises(KeyError):
        result.rendition(96, JPEG)


# ---- polyglots and payloads ----------------------------------------------------------------

MARKER = b"<script>alert('polyglot')</script>"


def zip_with_marker() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("index.html", MARKER)
    return buffer.getvalue()


def png_with_text_chunk() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", MARKER.decode())
    return encode(noise((300, 300)), "PNG", pnginfo=info)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(noise((300, 300)), "JPEG") + zip_with_marker(), id="jpeg-plus-zip"),
        pytest.param(encode(noise((300, 300)), "JPEG") + b"<html><body>" + MARKER, id="jpeg-plus-html"),
        pytest.param(encode(noise((300, 300)), "PNG") + MARKER, id="png-plus-html-after-iend"),
        pytest.param(encode(noise((300, 300)), "JPEG", comment=MARKER), id="jpeg-comment"),
        pytest.param(png_with_text_chunk(), id="png-text-chunk"),
    ],
)
def test_hidden_payloads_never_reach_the_renditions(data: bytes) -> None:
    output = all_outputs(process_photo(data))
    assert MARKER not in output
    assert b"<script" not in output
    assert b"PK\x03\x04" not in output


# ---- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><script>alert(1)</script></svg>',
            id="svg",
        ),
        pytest.param(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', id="svg-with-xml-prolog"),
        pytest.param(b"<!doctype html><html><script>alert(document.cookie)</script></html>", id="html-named-jpg"),
        pytest.param(b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>", id="html-behind-jpeg-magic"),
        pytest.param(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", id="pdf"),
        pytest.param(zip_with_marker(), id="zip"),
        pytest.param(b"just some text", id="text"),
        pytest.param(b"\x00" * 1024, id="zeros"),
    ],
)
def test_non_images_are_refused(data: bytes) -> None:
    assert refused(data).code == "not_an_image"


def heif_header(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\x00\x00\x00\x00" + b"mif1" + brand + b"\x00" * 64


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        pytest.param(encode(noise((300, 300)), "BMP"), "bmp", id="bmp"),
        pytest.param(encode(noise((300, 300)), "TIFF"), "tiff", id="tiff"),
        pytest.param(heif_header(b"heic"), "heif", id="heic"),
        pytest.param(heif_header(b"avif"), "avif", id="avif"),
    ],
)
def test_other_raster_formats_are_refused_by_name(data: bytes, fmt: str) -> None:
    error = refused(data)
    assert error.code == "unsupported_format"
    assert error.params == {"format": fmt}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(png_declaring(30_000, 30_000), id="png-30000x30000"),
        pytest.param(png_declaring(7_000, 7_000), id="png-just-over-our-limit"),
        pytest.param(jpeg_declaring(60_000, 60_000), id="jpeg-60000x60000"),
        pytest.param(jpeg_declaring(8_000, 6_000), id="jpeg-48-megapixels"),
    ],
)
def test_decompression_bombs_are_refused_quickly_without_decoding(data: bytes) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    error = refused(data)
    elapsed = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert error.code == "too_many_pixels"
    assert error.params["max_pixels"] == photos.MAX_PIXELS
    assert elapsed < 0.5
    assert grown * (1 if sys.platform == "darwin" else 1024) < 50 * 1024 * 1024


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_in_pillows_warning_range_are_refused_too() -> None:
    assert refused(png_declaring(10_000, 10_000)).code == "too_many_pixels"


def test_oversized_upload_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the image must not be opened")

    monkeypatch.setattr(photos.Image, "open", no_decoding)
    error = refused(encode(noise((300, 300)), "JPEG") + b"\x00" * MAX_UPLOAD_BYTES)
    assert error.code == "too_large"
    assert error.params["max_bytes"] == MAX_UPLOAD_BYTES


@pytest.mark.parametrize("size", [(150, 150), (1000, 199), (199, 1000)])
def test_too_small_images_are_refused(size: tuple[int, int]) -> None:
    error = refused(encode(noise(size), "PNG"))
    assert error.code == "too_small"
    assert (error.params["width"], error.params["height"]) == size
    assert error.params["min_width"] == error.params["min_height"] == photos.MIN_EDGE


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images_are_refused(fmt: str) -> None:
    frames = [Image.new("RGB", (300, 300), RED), Image.new("RGB", (300, 300), BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert refused(data).code == "animated"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_are_refused(fmt: str) -> None:
    data = encode(noise((400, 400)), fmt)
    assert refused(data[: len(data) // 2]).code == "not_an_image"


def test_png_with_corrupted_checksum_is_refused() -> None:
    data = bytearray(encode(noise((300, 300)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 100] ^= 0xFF
    assert refused(bytes(data)).code == "not_an_image"


def test_empty_upload_is_refused() -> None:
    assert refused(b"").code == "empty"


def test_photo_error_carries_a_stable_code_and_parameters() -> None:
    error = PhotoError("too_small", min_width=200, width=10)
    assert error.code == "too_small"
    assert error.params == {"min_width": 200, "width": 10}
    assert str(error) == "too_small (min_width=200, width=10)"
