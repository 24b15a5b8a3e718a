"""Scheduling data: a tutor's availability (weekly rules, overrides, booking policy), bookings with
holds and their state machine fields, private calendar feeds and external calendars.

Times are aware UTC instants (``UTCDateTime``); availability rules are wall-clock times in the
tutor's IANA zone and are interpreted only by the pure slot engine (``scheduling.slots``).

No double booking is a database guarantee, not a check-then-insert:

* each booking stores the instants it *blocks*, buffers included
  (``blocked_from = starts_at - buffer_before``, ``blocked_until = ends_at + buffer_after``);
* on PostgreSQL an exclusion constraint (``ex_bookings_tutor_no_overlap``, created by the
  migration with btree_gist) forbids two active bookings (held, requested, confirmed) of one
  tutor whose blocked ranges overlap; a violation raises sqlstate 23P01;
* on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (``marketplace.db``), so the
  service's overlap query and its insert run under the single writer lock.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Enum, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Entity, UTCDateTime


class BookingStatus(enum.StrEnum):
    held = "held"  # slot reserved until hold_expires_at, waiting for payment
    requested = "requested"  # paid or payable, waiting for the tutor (request mode) until request_expires_at
    confirmed = "confirmed"
    completed = "completed"
    expired = "expired"  # hold lapsed or request not answered in time
    declined = "declined"
    cancelled = "cancelled"
    no_show = "no_show"
    disputed = "disputed"
    resolved = "resolved"


#: Bookings that occupy their slot (the exclusion constraint's WHERE clause lists exactly these).
ACTIVE_STATUSES = (BookingStatus.held, BookingStatus.requested, BookingStatus.confirmed)

PAID_STATUSES = (
    BookingStatus.confirmed,
    BookingStatus.completed,
    BookingStatus.no_show,
    BookingStatus.disputed,
    BookingStatus.resolved,
)


#: The bookings that use up a student's trial with a tutor (index ``uq_bookings_one_trial``).
ONE_TRIAL_WHERE = "kind = 'trial' AND status NOT IN ('cancelled', 'expired', 'declined')"


class BookingKind(enum.StrEnum):
    lesson = "lesson"
    trial = "trial"


class CancelledBy(enum.StrEnum):
    student = "student"
    tutor = "tutor"
    system = "system"


class BookingMode(enum.StrEnum):
    instant = "instant"  # a paid hold confirms the lesson
    request = "request"  # the tutor accepts or declines within 24 hours


#: Cancellation policy choices: a student cancelling at least this many hours before the start
#: gets a full refund; later, ``late_refund_percent`` (0 or 50) of the price.
FREE_CANCEL_HOURS = (4, 12, 24, 48)
LATE_REFUND_PERCENTS = (0, 50)
MAX_RESCHEDULES = 2


class Availability(Entity):
    """One per tutor: weekly windows and the booking policy.

    ``weekly`` maps weekday ("0" = Monday ... "6" = Sunday) to a list of ``["HH:MM", "HH:MM"]``
    wall-clock windows in ``zone`` (``"24:00"``/``"00:00"`` as an end means midnight). Offered
    lesson lengths and prices live on the tutor profile (pricing step).
    """

    __tablename__ = "availabilities"

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True, nullable=False)
    zone: Mapped[str] = mapped_column(String(64), nullable=False)
    weekly: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    buffer_before: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # minutes
    buffer_after: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # minutes
    notice_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=12 * 60)
    horizon_days: Mapped[int] = mapped_column(Integer, nullable=False, default=60)
    max_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    booking_mode: Mapped[BookingMode] = mapped_column(
        Enum(BookingMode, name="booking_mode", native_enum=False, length=16),
        nullable=False,
        default=BookingMode.instant,
    )
    free_cancel_hours: Mapped[int] = mapped_column(Integer, nullable=False, default=24)
    late_refund_percent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AvailabilityOverride(Entity):
    """Availability for one date in the tutor's zone: ``replace`` (an empty ``windows`` list is a day
    off or holiday) or extra hours added to that date's weekly windows."""

    __tablename__ = "availability_overrides"

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    on_date: Mapped[date] = mapped_column(Date, nullable=False)
    windows: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    replace: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    note: Mapped[str] = mapped_column(String(120), nullable=False, default="")

    __table_args__ = (UniqueConstraint("tutor_id", "on_date", name="uq_availability_overrides_tutor_date"),)


class Booking(Entity):
    __tablename__ = "bookings"

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # The instants this booking keeps free of other lessons: buffers included (see module doc).
    blocked_from: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[BookingStatus] = mapped_column(
        Enum(BookingStatus, name="booking_status", native_enum=False, length=16), nullable=False
    )
    kind: Mapped[BookingKind] = mapped_column(
        Enum(BookingKind, name="booking_kind", native_enum=False, length=8), nullable=False, default=BookingKind.lesson
    )
    price_amount: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    request_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    series_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)  # weekly recurring bookings share it
    reschedule_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # iCalendar SEQUENCE
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_by: Mapped[CancelledBy | None] = mapped_column(
        Enum(CancelledBy, name="cancelled_by", native_enum=False, length=8), nullable=True
    )
    cancel_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    refund_amount: Mapped[int | None] = mapped_column(Integer, nullable=True)  # minor units decided at cancellation
    reminder_24h_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reminder_1h_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (
        Index("ix_bookings_tutor_starts", "tutor_id", "starts_at"),
        Index("ix_bookings_student_tutor", "student_id", "tutor_id"),
        Index("ix_bookings_student_starts", "student_id", "starts_at"),
        Index("ix_bookings_status_hold", "status", "hold_expires_at"),
        # One trial per student and tutor, unless the earlier one never happened (cancelled,
        # expired, declined): the database keeps it when two trial holds race.
        Index(
            "uq_bookings_one_trial",
            "student_id",
            "tutor_id",
            unique=True,
            sqlite_where=text(ONE_TRIAL_WHERE),
            postgresql_where=text(ONE_TRIAL_WHERE),
        ),
    )

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)


class CalendarFeed(Entity):
    """A user's private ICS feed. The token is the capability in the URL; revoking replaces it."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True, nullable=False)
    token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)


class ExternalCalendar(Entity):
    """A tutor's external calendar (ICS URL) whose busy times block slots; fetched periodically."""

    __tablename__ = "external_calendars"

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    etag: Mapped[str | None] = mapped_column(String(300), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(100), nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    __table_args__ = (UniqueConstraint("tutor_id", "url", name="uq_external_calendars_tutor_url"),)


class ExternalBusy(Entity):
    """One busy interval from an external calendar (recurring events already expanded)."""

    __tablename__ = "external_busy"

    calendar_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("external_calendars.id", ondelete="CASCADE"), nullable=False
    )
    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_external_busy_tutor_starts", "tutor_id", "starts_at"),)
