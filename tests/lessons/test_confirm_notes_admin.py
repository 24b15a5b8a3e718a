"""Without video both sides confirm the lesson; admins correct attendance (audited); notes and
homework with checked attachments; the practice history."""

from __future__ import annotations

import io
from datetime import timedelta

from PIL import Image
from sqlalchemy import select

from marketplace.audit import AuditEntry
from marketplace.db import session_factory
from tests.helpers import csrf_token, log_in, log_out, make_user, outbox, post_form
from tests.lessons.conftest import booking_status, make_lesson, room_name

PW = "correct horse battery"


async def test_without_video_both_confirming_completes_the_lesson(client):
    lesson = await make_lesson(starts_in=timedelta(minutes=-30))
    page = f"/lessons/{lesson.booking_id}/room"
    await log_in(client, lesson.student.email, PW)
    response = await post_form(client, f"/lessons/{lesson.booking_id}/confirm", {}, page=page)
    assert response.status_code == 200 and "once the other side confirms" in response.text
    assert await booking_status(lesson.booking_id) == "confirmed"
    # confirming twice is harmless
    await post_form(client, f"/lessons/{lesson.booking_id}/confirm", {}, page=page)
    await log_out(client)
    await log_in(client, lesson.tutor.email, PW)
    response = await post_form(client, f"/lessons/{lesson.booking_id}/confirm", {}, page=page)
    assert "Both of you confirmed" in response.text
    assert await booking_status(lesson.booking_id) == "completed"


async def test_confirm_is_refused_before_the_start_for_strangers_and_with_video(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-30))
    await log_in(client, lesson.student.email, PW)
    token = await csrf_token(client, "/practice")
    response = await client.post(f"/lessons/{lesson.booking_id}/confirm", data={"_csrf_token": token})
    assert response.status_code == 409  # video configured: attendance decides


async def test_confirm_before_start_and_by_strangers_is_refused(client):
    lesson = await make_lesson(starts_in=timedelta(hours=2))
    await log_in(client, lesson.student.email, PW)
    token = await csrf_token(client, "/practice")
    assert (await client.post(f"/lessons/{lesson.booking_id}/confirm", data={"_csrf_token": token})).status_code == 409
    await log_out(client)
    await make_user(email="stranger@example.com")
    await log_in(client, "stranger@example.com", PW)
    token = await csrf_token(client, "/practice")
    assert (await client.post(f"/lessons/{lesson.booking_id}/confirm", data={"_csrf_token": token})).status_code == 404
    assert await booking_status(lesson.booking_id) == "confirmed"


async def test_admin_corrects_attendance_with_an_audit_record(client, video):
    lesson = await make_lesson(starts_in=timedelta(minutes=-90), minutes=60)
    await room_name(lesson)
    admin = await make_user(email="admin@example.com", role="admin")
    await log_in(client, admin.email, PW)
    page = f"/lessons/{lesson.booking_id}/attendance"
    assert (await client.get(page)).status_code == 200
    bad = await post_form(client, page, {"tutor_minutes": "90", "student_minutes": "10", "reason": "x"})
    assert bad.status_code == 422
    no_reason = await post_form(client, page, {"tutor_minutes": "60", "student_minutes": "10", "reason": ""})
    assert no_reason.status_code == 422
    assert await booking_status(lesson.booking_id) == "confirmed"
    ok = await post_form(
        client, page, {"tutor_minutes": "60", "student_minutes": "10", "reason": "Webhooks were lost; tutor log"}
    )
    assert ok.status_code == 200
    assert await booking_status(lesson.booking_id) == "no_show"
    async with session_factory()() as session:
        (entry,) = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "lesson.attendance_correct"))
        ).scalars()
    assert entry.actor_id == admin.id and entry.reason == "Webhooks were lost; tutor log"
    assert entry.after["outcome"] == "student_absent" and entry.before == {"attendance": []}


async def test_only_admins_correct_attendance(client):
    lesson = await make_lesson(starts_in=timedelta(minutes=-90))
    await log_in(client, lesson.tutor.email, PW)
    assert (await client.get(f"/lessons/{lesson.booking_id}/attendance")).status_code == 403


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_tutor_writes_sanitized_notes_student_reads_them_and_is_mailed(client):
    lesson = await make_lesson(starts_in=timedelta(minutes=-60), minutes=45)
    notes_page = f"/lessons/{lesson.booking_id}/notes"
    await log_in(client, lesson.tutor.email, PW)
    response = await post_form(
        client,
        notes_page,
        {
            "notes": "**Great** tone <script>alert(1)</script>",
            "homework": "- scales in G\n- [link](javascript:alert(1))",
        },
    )
    assert response.status_code == 200
    assert "<strong>Great</strong>" in response.text
    assert "<script>alert" not in response.text and 'href="javascript' not in response.text
    assert "tone &lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    token = await csrf_token(client, notes_page)
    upload = await client.post(
        f"{notes_page}/files", data={"_csrf_token": token}, files={"file": ("sheet.png", _png(), "image/png")}
    )
    assert upload.status_code == 200 and "sheet.png" in upload.text
    disguised = await client.post(
        f"{notes_page}/files",
        data={"_csrf_token": token},
        files={"file": ("score.pdf", b"<html><script>alert(1)</script></html>", "application/pdf")},
    )
    assert disguised.status_code == 422
    png_as_pdf = await client.post(
        f"{notes_page}/files", data={"_csrf_token": token}, files={"file": ("score.pdf", _png(), "application/pdf")}
    )
    assert png_as_pdf.status_code == 422
    too_big = await client.post(
        f"{notes_page}/files",
        data={"_csrf_token": token},
        files={"file": ("a.mp3", b"ID3" + b"\0" * (10 * 1024 * 1024), "audio/mpeg")},
    )
    assert too_big.status_code in (413, 422)
    mails = await outbox(lesson.student.email)
    assert len(mails) == 1 and notes_page in mails[0].body_text
    await log_out(client)

    await log_in(client, lesson.student.email, PW)
    page = await client.get(notes_page)
    assert "<strong>Great</strong>" in page.text and "Write notes" not in page.text
    fragment = await client.get(notes_page, headers={"hx-request": "true"})
    assert fragment.text.lstrip().startswith("{#") is False and "<html" not in fragment.text
    assert 'id="lesson-notes"' in fragment.text
    import re

    file_url = re.search(r'href="(/lessons/[^"]+/files/[^"]+)"', page.text).group(1)
    download = await client.get(file_url)
    assert download.status_code == 200 and download.content == _png()
    assert download.headers["content-type"].startswith("image/png")
    assert "attachment" in download.headers["content-disposition"]
    history = await client.get("/practice")
    assert "scales in G" in history.text and "Tina Tutor" in history.text
    # the student cannot write notes
    token = await csrf_token(client, notes_page)
    assert (await client.post(notes_page, data={"_csrf_token": token, "notes": "x", "homework": ""})).status_code == 403
    await log_out(client)

    await make_user(email="nosy@example.com")
    await log_in(client, "nosy@example.com", PW)
    assert (await client.get(file_url)).status_code == 404
    assert (await client.get(notes_page)).status_code == 404


async def test_notes_cannot_be_written_before_the_lesson(client):
    lesson = await make_lesson(starts_in=timedelta(hours=5))
    await log_in(client, lesson.tutor.email, PW)
    notes_page = f"/lessons/{lesson.booking_id}/notes"
    token = await csrf_token(client, notes_page)
    response = await client.post(notes_page, data={"_csrf_token": token, "notes": "early", "homework": ""})
    assert response.status_code == 409
