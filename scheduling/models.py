"""Bookings. This is the minimal shape that reviews and messaging rely on; the scheduling issue
adds holds, the slot engine's constraints and the full state machine on top of it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Entity, UTCDateTime


class BookingStatus(enum.StrEnum):
    held = "held"
    confirmed = "confirmed"
    completed = "completed"
    expired = "expired"
    declined = "declined"
    cancelled = "cancelled"
    no_show = "no_show"
    disputed = "disputed"
    resolved = "resolved"


PAID_STATUSES = (
    BookingStatus.confirmed,
    BookingStatus.completed,
    BookingStatus.no_show,
    BookingStatus.disputed,
    BookingStatus.resolved,
)


class Booking(Entity):
    __tablename__ = "bookings"

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[BookingStatus] = mapped_column(
        Enum(BookingStatus, name="booking_status", native_enum=False, length=16), nullable=False
    )
    price_amount: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_bookings_tutor_starts", "tutor_id", "starts_at"),
        Index("ix_bookings_student_tutor", "student_id", "tutor_id"),
    )
