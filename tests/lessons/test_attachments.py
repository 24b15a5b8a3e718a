"""Attachments are typed by their content."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lessons.attachments import MAX_BYTES, AttachmentError, check_attachment


def png() -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (10, 10)).save(b, "PNG")
    return b.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [
        (PDF, "sheet.pdf", "application/pdf"),
        (png(), "photo.png", "image/png"),
        (b"ID3\x04\x00" + b"\0" * 100, "take.mp3", "audio/mpeg"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\0" * 40, "take.wav", "audio/wav"),
        (b"OggS" + b"\0" * 60, "take.ogg", "audio/ogg"),
        (b"fLaC" + b"\0" * 60, "take.flac", "audio/flac"),
        (b"\0\0\0\x20ftypM4A " + b"\0" * 40, "take.m4a", "audio/mp4"),
        (PDF, "no-extension", "application/pdf"),
    ],
)
def test_accepted_by_content(data, name, content_type):
    checked = check_attachment(data, name)
    assert checked.content_type == content_type and checked.size == len(data)


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"", "a.pdf", "empty"),
        (b"%PDF-" + b"a" * MAX_BYTES, "a.pdf", "too_large"),
        (b"<svg onload=alert(1)>", "a.svg", "unsupported"),
        (b"<html>", "a.pdf", "unsupported"),
        (b"MZ\x90\x00", "setup.exe", "unsupported"),
        (PDF, "notes.png", "unsupported"),  # name and content disagree
        (png(), "sheet.pdf", "unsupported"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "a.png", "unsupported"),  # truncated image
        (b"%PDF-1.4 no end marker", "a.pdf", "unsupported"),
    ],
)
def test_refused(data, name, code):
    with pytest.raises(AttachmentError) as info:
        check_attachment(data, name)
    assert info.value.code == code


def test_filename_is_made_safe():
    assert check_attachment(PDF, "../../etc/passwd").filename == "passwd.pdf"
    assert check_attachment(PDF, 'we"ird<name>.pdf').filename == "we_ird_name_.pdf"
