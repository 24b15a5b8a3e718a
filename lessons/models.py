"""Lesson data: the LiveKit room of a booking, attendance built from room events, the verified
webhook events (each stored once by its id), the settlement decision, the "lesson took place"
confirmations used without video, notes and homework with attachments, recordings and consent.

Bookings themselves belong to ``scheduling``; this domain changes a booking's status only through
``scheduling.bookings.booking_complete`` / ``booking_no_show``.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Entity, UTCDateTime


class LessonRoom(Entity):
    """One LiveKit room per confirmed lesson; its name is random (unguessable)."""

    __tablename__ = "lesson_rooms"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_on_server_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    music_mode: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class AttendanceSource(enum.StrEnum):
    webhook = "webhook"
    reconcile = "reconcile"
    admin = "admin"


class AttendanceSession(Entity):
    """One stay of one person in the room: a LiveKit participant session (its ``sid``), or an
    interval entered by an admin. A reconnect that gets a new sid is a new session; the decision
    merges overlapping sessions per person."""

    __tablename__ = "lesson_attendance"

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    participant_sid: Mapped[str] = mapped_column(String(64), nullable=False)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    source: Mapped[AttendanceSource] = mapped_column(
        Enum(AttendanceSource, name="attendance_source", native_enum=False, length=16), nullable=False
    )
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # replaced by an admin

    __table_args__ = (
        UniqueConstraint("booking_id", "participant_sid", name="uq_lesson_attendance_booking_sid"),
        Index("ix_lesson_attendance_booking_user", "booking_id", "user_id"),
    )


class WebhookEvent(Entity):
    """A verified LiveKit webhook, stored once by its event id (a replay is recognised here) with
    its raw body; a job applies it (``applied_at``), in any order, once."""

    __tablename__ = "lesson_webhook_events"

    event_id: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    event: Mapped[str] = mapped_column(String(40), nullable=False)
    room_name: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    booking_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bookings.id", ondelete="SET NULL"), nullable=True)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    payload: Mapped[str] = mapped_column(Text, nullable=False, default="")
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_lesson_webhook_events_booking_applied", "booking_id", "applied_at"),)


class Outcome(enum.StrEnum):
    delivered = "delivered"
    tutor_absent = "tutor_absent"
    student_absent = "student_absent"
    both_absent = "both_absent"  # no evidence either way: not settled automatically, an admin decides
    confirmed_by_both = "confirmed_by_both"  # without video: both sides said the lesson took place


class LessonOutcome(Entity):
    """The decision taken for a lesson (once); ``settled`` when the booking service applied it."""

    __tablename__ = "lesson_outcomes"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    outcome: Mapped[Outcome] = mapped_column(
        Enum(Outcome, name="lesson_outcome", native_enum=False, length=20), nullable=False
    )
    tutor_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    student_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    settled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )  # None: the end-of-slot job


class LessonConfirmation(Entity):
    """Without video: one side says the lesson took place. Both sides: the lesson is completed."""

    __tablename__ = "lesson_confirmations"

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)

    __table_args__ = (UniqueConstraint("booking_id", "user_id", name="uq_lesson_confirmations_booking_user"),)


class LessonNote(Entity):
    """The tutor's notes and homework for one lesson (sanitised Markdown, rendered on display)."""

    __tablename__ = "lesson_notes"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    notes: Mapped[str] = mapped_column(Text, nullable=False, default="")
    homework: Mapped[str] = mapped_column(Text, nullable=False, default="")
    lesson_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)  # the lesson's start
    student_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_lesson_notes_student_lesson", "student_id", "lesson_at"),)


class NoteAttachment(Entity):
    """A file attached to lesson notes, checked by content, stored under VAR_DIR by its digest."""

    __tablename__ = "lesson_note_attachments"

    note_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lesson_notes.id", ondelete="CASCADE"), nullable=False)
    filename: Mapped[str] = mapped_column(String(200), nullable=False)
    content_type: Mapped[str] = mapped_column(String(60), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (Index("ix_lesson_note_attachments_note", "note_id"),)


class RecordingConsent(Entity):
    """One side agrees, before joining, that this lesson may be recorded."""

    __tablename__ = "lesson_recording_consents"

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)

    __table_args__ = (UniqueConstraint("booking_id", "user_id", name="uq_lesson_recording_consents_booking_user"),)


class RecordingStatus(enum.StrEnum):
    requested = "requested"  # we asked LiveKit to start the egress
    active = "active"
    complete = "complete"
    failed = "failed"
    deleted = "deleted"  # removed after the retention period


class Recording(Entity):
    """A room-composite egress of a lesson to S3-compatible storage."""

    __tablename__ = "lesson_recordings"

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False)
    egress_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    status: Mapped[RecordingStatus] = mapped_column(
        Enum(RecordingStatus, name="recording_status", native_enum=False, length=16), nullable=False
    )
    filename: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    location: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    duration_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_lesson_recordings_booking", "booking_id"),)
