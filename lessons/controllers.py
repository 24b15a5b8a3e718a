"""Lesson pages and endpoints.

- ``GET  /lessons/{id}/room``: the lesson room (pre-join check, call, chat); without LiveKit
  settings it says video is not configured and offers "the lesson took place".
- ``POST /lessons/{id}/token``: a LiveKit access token (JSON) for the booked student or tutor,
  only within the room window.
- ``POST /lessons/{id}/confirm``: "the lesson took place" (without video; both sides complete it).
- ``POST /lessons/{id}/recording``: agree to (or withdraw from) recording before joining.
- ``GET  /lessons/{id}/notes``: notes, homework, attachments and recordings; the htmx fragment
  ``lessons/_notes.html`` for the lesson detail page (``hx-get="/lessons/{id}/notes"``).
- ``POST /lessons/{id}/notes``, ``/notes/files``, ``/notes/files/{fid}/delete``: the tutor edits.
- ``GET  /lessons/{id}/files/{fid}``: an attachment, to the two participants only, as a download.
- ``GET  /lessons/{id}/recordings/{rid}``: a recording, to the two participants only (a signed link).
- ``GET/POST /lessons/{id}/attendance``: admins see and correct attendance (audited).
- ``GET  /practice``: a student's practice history (notes and homework over time).
- ``POST /webhooks/livekit``: verified room events (no session, no CSRF).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath
from litestar.response import File, Redirect, Template

from lessons import attachments, livekit, services, storage
from lessons.models import NoteAttachment, Recording, RecordingStatus
from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction
from marketplace.errors import AppError, NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.settings import get_settings
from marketplace.web import CSP, admin_required, current_user, flash, form_data, is_htmx, login_required, page, redirect

UPLOAD_LIMIT = attachments.MAX_BYTES + 256 * 1024


def files_dir() -> Path:
    return get_settings().var_dir / "media" / "lessons"


def store_file(data: bytes, sha256: str) -> None:
    folder = files_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / sha256
    if not target.exists():
        tmp = target.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)


def room_csp() -> str:
    """The site CSP, with the LiveKit server added to connect-src (signal websocket, HTTP)."""
    if not livekit.configured():
        return CSP
    return CSP.replace("connect-src 'self'", f"connect-src 'self' {livekit.csp_origins()}", 1).replace(
        "media-src 'self'", "media-src 'self' blob:", 1
    )


def attachment_message(exc: attachments.AttachmentError) -> str:
    if exc.code == "empty":
        return _("Choose a file to attach.")
    if exc.code == "too_large":
        return _("This file is too large: at most %(mb)d MB.", mb=attachments.MAX_BYTES // (1024 * 1024))
    return _("Attach a PDF, an image (JPEG, PNG, WebP, GIF) or an audio file (MP3, WAV, Ogg, FLAC, M4A).")


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError) as exc:
        raise NotFound(_("We could not find this file.")) from exc


async def _notes_context(session, access: services.LessonAccess, now: datetime, **extra: Any) -> dict[str, Any]:
    note = await services.note_for_booking(session, booking_id=access.booking.id)
    files = await services.note_attachments(session, note_id=note.id) if note else []
    return {
        "access": access,
        "booking": access.booking,
        "note": note,
        "files": files,
        "notes_html": services.render_markdown(note.notes) if note else "",
        "homework_html": services.render_markdown(note.homework) if note else "",
        "can_edit": access.role == "tutor" and services.notes_open(access.booking, now),
        "recordings": await services.recordings_for(session, booking_id=access.booking.id),
        "errors": {},
        "form": {"notes": note.notes if note else "", "homework": note.homework if note else ""},
        "error_message": None,
        "max_mb": attachments.MAX_BYTES // (1024 * 1024),
        **extra,
    }


class LessonRoomController(Controller):
    path = "/lessons/{booking_id:uuid}"
    guards = [login_required]
    tags = ["lessons"]
    include_in_schema = False

    @get("/room", name="lesson_room")
    async def room(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        user = current_user(request)
        now = datetime.now(UTC)
        async with session_factory()() as session:
            access = await services.lesson_access(session, viewer=user, booking_id=booking_id)
            booking = access.booking
            opens, closes = services.join_window(booking)
            if booking.status not in services.ROOM_STATUSES:
                state = "closed_status"
            elif now < opens:
                state = "early"
            elif now >= closes:
                state = "over"
            else:
                state = "open"
            confirmed = await services.confirmations(session, booking_id=booking.id)
            agreed = await services.consents(session, booking_id=booking.id)
            outcome = await services.outcome_for(session, booking_id=booking.id)
        video = livekit.configured()
        context = {
            "access": access,
            "booking": booking,
            "state": state,
            "opens_at": opens,
            "closes_at": closes,
            "video": video,
            "recording": livekit.recording_configured(),
            "i_consented": user.id in agreed,
            "other_consented": access.other.id in agreed,
            "i_confirmed": user.id in confirmed,
            "other_confirmed": access.other.id in confirmed,
            "can_confirm": (not video) and booking.status.value == "confirmed" and now >= booking.starts_at,
            "outcome": outcome,
            "music_mode": True,  # every lesson here is an instrument lesson; speech is a toggle
        }
        headers = {"content-security-policy": room_csp(), "cache-control": "no-store"}
        return Template("lessons/room.html", context=context, headers=headers)

    @post("/token", name="lesson_token")
    async def token(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Response:
        user = current_user(request)
        async with transaction(write=False) as session:
            issued = await services.token_issue(session, viewer=user, booking_id=booking_id)
        body = {
            "token": issued.token,
            "url": issued.url,
            "identity": issued.identity,
            "room": issued.room,
            "expires_at": issued.expires_at.isoformat(),
        }
        return Response(body, status_code=200, media_type=MediaType.JSON, headers={"cache-control": "no-store"})

    @post("/confirm", name="lesson_confirm")
    async def confirm(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Redirect:
        async with transaction() as session:
            _mine, completed = await services.lesson_confirm_took_place(
                session, viewer=current_user(request), booking_id=booking_id
            )
        if completed:
            flash(request, _("Thank you. Both of you confirmed: the lesson is completed."))
        else:
            flash(request, _("Thank you. The lesson is completed once the other side confirms too."))
        return redirect(f"/lessons/{booking_id}/room")

    @post("/recording", name="lesson_recording_consent")
    async def recording(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Redirect:
        form = await form_data(request)
        agree = form.get("agree") == "yes"
        async with transaction() as session:
            await services.recording_consent(session, viewer=current_user(request), booking_id=booking_id, agree=agree)
        flash(
            request,
            _("You agreed that this lesson may be recorded.") if agree else _("You do not agree to a recording."),
        )
        return redirect(f"/lessons/{booking_id}/room")

    # ---- notes ----------------------------------------------------------------------------

    @get("/notes", name="lesson_notes")
    async def notes(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        now = datetime.now(UTC)
        async with session_factory()() as session:
            access = await services.lesson_access(session, viewer=current_user(request), booking_id=booking_id)
            context = await _notes_context(session, access, now)
        return page(request, "lessons/notes.html", partial="lessons/_notes.html", **context)

    @post("/notes", name="lesson_notes_save")
    async def notes_save(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        user = current_user(request)
        now = datetime.now(UTC)
        try:
            async with transaction() as session:
                await services.note_save(
                    session,
                    tutor=user,
                    booking_id=booking_id,
                    notes=form.get("notes", ""),
                    homework=form.get("homework", ""),
                    now=now,
                )
        except ValidationFailed as exc:
            async with session_factory()() as session:
                access = await services.lesson_access(session, viewer=user, booking_id=booking_id)
                context = await _notes_context(
                    session,
                    access,
                    now,
                    errors=exc.errors,
                    error_message=exc.message,
                    form={"notes": form.get("notes", "")[:25_000], "homework": form.get("homework", "")[:25_000]},
                )
            return page(request, "lessons/notes.html", partial="lessons/_notes.html", status_code=422, **context)
        if is_htmx(request):
            async with session_factory()() as session:
                access = await services.lesson_access(session, viewer=user, booking_id=booking_id)
                context = await _notes_context(session, access, now, saved=True)
            return Template("lessons/_notes.html", context=context)
        flash(request, _("Notes saved."))
        return redirect(f"/lessons/{booking_id}/notes")

    @post("/notes/files", name="lesson_notes_file", request_max_body_size=UPLOAD_LIMIT)
    async def notes_file(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        user = current_user(request)
        now = datetime.now(UTC)
        form = await request.form()
        upload = form.get("file")
        error = None
        checked = data = None
        if not isinstance(upload, UploadFile):
            error = _("Choose a file to attach.")
        else:
            data = await upload.read()
            try:
                checked = await asyncio.to_thread(attachments.check_attachment, data, upload.filename or "")
            except attachments.AttachmentError as exc:
                error = attachment_message(exc)
        if checked is not None and data is not None:
            try:
                async with transaction() as session:
                    await services.note_attach(session, tutor=user, booking_id=booking_id, checked=checked, now=now)
                    await asyncio.to_thread(store_file, data, checked.sha256)
            except AppError as exc:
                if exc.status_code >= 404 and exc.status_code != 409:
                    raise
                error = exc.message
        if error:
            async with session_factory()() as session:
                access = await services.lesson_access(session, viewer=user, booking_id=booking_id)
                context = await _notes_context(session, access, now, errors={"file": error}, error_message=error)
            return page(request, "lessons/notes.html", partial="lessons/_notes.html", status_code=422, **context)
        flash(request, _("File attached."))
        return redirect(f"/lessons/{booking_id}/notes")

    @post("/notes/files/{file_id:str}/delete", name="lesson_notes_file_delete")
    async def notes_file_delete(
        self, request: Request, booking_id: FromPath[uuid.UUID], file_id: FromPath[str]
    ) -> Redirect:
        async with transaction() as session:
            await services.attachment_remove(
                session, tutor=current_user(request), booking_id=booking_id, attachment_id=_uuid(file_id)
            )
        flash(request, _("File removed."))
        return redirect(f"/lessons/{booking_id}/notes")

    @get("/files/{file_id:str}", name="lesson_file")
    async def file(self, request: Request, booking_id: FromPath[uuid.UUID], file_id: FromPath[str]) -> File:
        async with session_factory()() as session:
            await services.lesson_access(session, viewer=current_user(request), booking_id=booking_id)
            note = await services.note_for_booking(session, booking_id=booking_id)
            row = await session.get(NoteAttachment, _uuid(file_id))
        if note is None or row is None or row.note_id != note.id:
            raise NotFound(_("We could not find this file."))
        path = files_dir() / row.sha256
        if not path.is_file():
            raise NotFound(_("We could not find this file."))
        return File(
            path=path,
            filename=row.filename,
            media_type=row.content_type,
            content_disposition_type="attachment",
            headers={"cache-control": "private, no-store", "x-content-type-options": "nosniff"},
        )

    @get("/recordings/{recording_id:str}", name="lesson_recording_open")
    async def recording_open(
        self, request: Request, booking_id: FromPath[uuid.UUID], recording_id: FromPath[str]
    ) -> Redirect:
        """A recording, to the two participants only: a short-lived signed link to the private bucket."""
        async with session_factory()() as session:
            access = await services.lesson_access(session, viewer=current_user(request), booking_id=booking_id)
            try:
                row = await session.get(Recording, uuid.UUID(recording_id))
            except ValueError:
                row = None
        if row is None or row.booking_id != booking_id or row.status != RecordingStatus.complete or not row.filename:
            raise NotFound(_("We could not find this recording."))
        if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
            raise NotFound(_("This recording was deleted at the end of its retention period."))
        suffix = Path(row.filename).suffix.lower()[:8] or ".mp4"
        name = f"lesson-{access.booking.starts_at:%Y-%m-%d}{suffix}"
        response = Redirect(storage.presigned_get(row.filename, filename=name), status_code=303)
        response.headers["cache-control"] = "private, no-store"
        return response

    # ---- admin ----------------------------------------------------------------------------

    @get("/attendance", name="lesson_attendance", guards=[admin_required])
    async def attendance(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template:
        return await self._attendance_page(request, booking_id)

    async def _attendance_page(
        self, request: Request, booking_id: uuid.UUID, *, errors: dict[str, str] | None = None, status: int = 200
    ) -> Template:
        from scheduling.models import Booking

        async with session_factory()() as session:
            booking = await session.get(Booking, booking_id)
            if booking is None:
                raise NotFound(_("We could not find this lesson."))
            rows = await services.attendance_rows(session, booking_id=booking_id)
            outcome = await services.outcome_for(session, booking_id=booking_id)
            people = {
                u.id: u
                for u in [await session.get(User, booking.tutor_id), await session.get(User, booking.student_id)]
            }
            decision = await services.attendance_decision(session, booking=booking)
        return Template(
            "lessons/attendance.html",
            context={
                "booking": booking,
                "rows": rows,
                "outcome": outcome,
                "people": people,
                "decision": decision,
                "errors": errors or {},
            },
            status_code=status,
        )

    @post("/attendance", name="lesson_attendance_correct", guards=[admin_required])
    async def attendance_correct(self, request: Request, booking_id: FromPath[uuid.UUID]) -> Template | Redirect:
        form = await form_data(request)
        errors: dict[str, str] = {}
        minutes = {}
        for key in ("tutor_minutes", "student_minutes"):
            try:
                minutes[key] = int(form.get(key, "").strip())
            except ValueError:
                errors[key] = _("Enter a whole number of minutes.")
        if not errors:
            try:
                async with transaction() as session:
                    await services.attendance_correct(
                        session,
                        admin=current_user(request),
                        booking_id=booking_id,
                        tutor_minutes=minutes["tutor_minutes"],
                        student_minutes=minutes["student_minutes"],
                        reason=form.get("reason", ""),
                    )
            except ValidationFailed as exc:
                errors = exc.errors or {"reason": exc.message}
        if errors:
            return await self._attendance_page(request, booking_id, errors=errors, status=422)
        flash(request, _("Attendance corrected."))
        return redirect(f"/lessons/{booking_id}/attendance")


class PracticeController(Controller):
    path = "/practice"
    guards = [login_required]
    tags = ["lessons"]
    include_in_schema = False

    @get("/", name="practice")
    async def practice(self, request: Request) -> Template:
        async with session_factory()() as session:
            items = await services.practice_history(session, student=current_user(request))
        rendered = [
            {
                "item": item,
                "notes_html": services.render_markdown(item.note.notes),
                "homework_html": services.render_markdown(item.note.homework),
            }
            for item in items
        ]
        return Template("lessons/practice.html", context={"items": rendered})


class LiveKitWebhookController(Controller):
    path = "/webhooks/livekit"
    tags = ["webhooks"]
    include_in_schema = False
    opt = {"skip_session": True}

    @post("/", name="livekit_webhook", request_max_body_size=256 * 1024)
    async def receive(self, request: Request) -> Response:
        body = await request.body()
        try:
            event = livekit.verify_webhook(body, request.headers.get("authorization"))
        except livekit.WebhookRefused:
            return _json({"error": "invalid signature", "detail": _("The webhook signature is not valid.")}, 401)
        # Stored once by its id for the room's lesson, committed together with the events other
        # requests are storing meanwhile (group commit); the job that applies it is sent after.
        result = await services.webhook_receive(event, body.decode("utf-8"))
        if result.status == "unknown_room":
            return _json({"error": "unknown room", "detail": _("This room is not a lesson room.")}, 404)
        return _json({"status": result.status, "event": result.event}, 200)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=MediaType.JSON)
