"""Attachments to lesson notes: type from the content, never from the name. Pure, no I/O.

Accepted: PDF (``%PDF-`` header and an ``%%EOF`` marker near the end), images that Pillow opens
and verifies as JPEG, PNG, WebP or GIF (within ``MAX_PIXELS``), and audio recognised by its
signature (MP3 with an ID3 tag or an MPEG frame header, WAV, Ogg, FLAC, M4A/AAC in an MP4
container with an audio brand, WebM/Matroska). Anything else, a file whose name promises one
type and whose bytes are another, or a file over ``MAX_BYTES`` is refused with an
:class:`AttachmentError` code (``empty``, ``too_large``, ``unsupported``).

Stored files are served back only to the lesson's two participants, as downloads
(``Content-Disposition: attachment``) with ``nosniff`` and the content type found here.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from io import BytesIO

from PIL import Image

from marketplace.errors import CodedError

MAX_BYTES = 10 * 1024 * 1024
MAX_FILES_PER_NOTE = 10
MAX_PIXELS = 40_000_000

_IMAGE_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_M4A_BRANDS = {b"M4A ", b"M4B ", b"mp42", b"isom", b"dash", b"mp41", b"iso2"}


class AttachmentError(CodedError):
    """A refused attachment; ``code`` is stable, the web layer translates."""


@dataclass(frozen=True, slots=True)
class CheckedFile:
    filename: str
    content_type: str
    size: int
    sha256: str


def _audio_type(head: bytes) -> str | None:
    if head.startswith(b"ID3") or (len(head) > 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and head[1] & 0x06):
        return "audio/mpeg"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return "audio/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    return None


def _image_type(data: bytes) -> str | None:
    try:
        with Image.open(BytesIO(data), formats=tuple(_IMAGE_TYPES)) as probe:
            width, height = probe.size
            if width * height > MAX_PIXELS:
                return None
            probe.verify()
            return _IMAGE_TYPES.get(probe.format or "")
    except Exception:  # untrusted decoder input: anything unreadable is not an image
        return None


def content_type_of(data: bytes) -> str | None:
    head = data[:64]
    if head.startswith(b"%PDF-"):
        return "application/pdf" if b"%%EOF" in data[-2048:] else None
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")) or (
        head.startswith(b"RIFF") and head[8:12] == b"WEBP"
    ):
        return _image_type(data)
    return _audio_type(head)


_UNSAFE_NAME = re.compile(r"[^\w.\- ()]+")
_EXTENSIONS = {
    "application/pdf": {"pdf"},
    "image/jpeg": {"jpg", "jpeg"},
    "image/png": {"png"},
    "image/webp": {"webp"},
    "image/gif": {"gif"},
    "audio/mpeg": {"mp3"},
    "audio/wav": {"wav"},
    "audio/ogg": {"ogg", "oga", "opus"},
    "audio/flac": {"flac"},
    "audio/mp4": {"m4a", "aac", "mp4"},
    "audio/webm": {"webm", "weba"},
}


def safe_filename(name: str, content_type: str) -> str:
    """A display/download name: no path, no control or odd characters, the right extension."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = _UNSAFE_NAME.sub("_", base).strip(" ._")[:120] or "attachment"
    stem, _, ext = base.rpartition(".")
    allowed = _EXTENSIONS[content_type]
    if not stem or ext.lower() not in allowed:
        base = f"{base}.{sorted(allowed)[0]}"
    return base


def check_attachment(data: bytes, filename: str) -> CheckedFile:
    if not data:
        raise AttachmentError("empty")
    if len(data) > MAX_BYTES:
        raise AttachmentError("too_large", max_bytes=MAX_BYTES, size=len(data))
    content_type = content_type_of(data)
    if content_type is None:
        raise AttachmentError("unsupported")
    # A name that claims another accepted type than the content is a disguise: refuse it.
    ext = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    claimed = {ct for ct, exts in _EXTENSIONS.items() if ext in exts}
    if claimed and content_type not in claimed:
        raise AttachmentError("unsupported")
    return CheckedFile(
        filename=safe_filename(filename, content_type),
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
