"""Lesson reminders: a mail to the tutor and the student 24 hours and 1 hour before each confirmed
lesson, in each recipient's language and zone.

A periodic job (every 5 minutes) looks for confirmed lessons that start within the next 24 hours
(or hour) and have not been reminded yet, so a missed or late tick still sends; a lesson whose
start has passed gets no reminder. Each reminder is claimed with
``UPDATE ... SET reminder_24h_sent_at = now WHERE id = ... AND reminder_24h_sent_at IS NULL AND
status = 'confirmed'`` in the same transaction as its mails: of two ticks that race (several web
processes each run a clock in embedded mode) only the one whose UPDATE changed the row queues
mail, and a rollback undoes the claim together with the mails.

Noise rules (documented choices):

* no 24-hour reminder for a lesson booked (confirmed) less than 25 hours before it starts: the
  confirmation mail has just told both people the time;
* no 24-hour reminder once the lesson is less than an hour away (after downtime): the 1-hour
  reminder is the one that still helps;
* no 1-hour reminder for a lesson confirmed within its last hour, for the same reason.

A rescheduled lesson should be reminded again for its new time: the booking service clears both
``reminder_*_sent_at`` fields when it moves a lesson.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Interval, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import jobs, periodic
from marketplace.accounts.models import User
from marketplace.db import transaction
from marketplace.i18n import format_datetime, use_locale
from marketplace.i18n import gettext as _
from marketplace.mail import mail_queue
from scheduling.ics import lesson_summary, lesson_url, tutor_instruments
from scheduling.models import Booking, BookingStatus

log = logging.getLogger(__name__)

REMINDERS = {
    # kind: (how long before the start, the column, the least lead time between confirmation and start)
    "24h": (timedelta(hours=24), Booking.reminder_24h_sent_at, timedelta(hours=25)),
    "1h": (timedelta(hours=1), Booking.reminder_1h_sent_at, timedelta(hours=1)),
}
BATCH = 500
TICK_SECONDS = 5 * 60


def _confirmed_early(dialect: str, lead: timedelta):
    """Confirmed at least ``lead`` before the start (bookings without confirmed_at count from their
    creation). Date arithmetic between two columns differs: SQLite stores text, compared in days."""
    confirmed = func.coalesce(Booking.confirmed_at, Booking.created_at)
    if dialect == "sqlite":
        return func.julianday(confirmed) <= func.julianday(Booking.starts_at) - lead.total_seconds() / 86_400
    return confirmed <= Booking.starts_at - literal(lead, Interval())


def _due(kind: str, now: datetime, dialect: str):
    before, column, lead = REMINDERS[kind]
    conditions = [
        Booking.status == BookingStatus.confirmed,
        Booking.starts_at > now,
        Booking.starts_at <= now + before,
        column.is_(None),
        _confirmed_early(dialect, lead),
    ]
    if kind == "24h":
        conditions.append(Booking.starts_at > now + REMINDERS["1h"][0])
    return conditions


def _is_due(booking: Booking, kind: str, now: datetime) -> bool:
    """The rules of :func:`_due` again, on the row read inside the claiming transaction."""
    before, _column, lead = REMINDERS[kind]
    confirmed = booking.confirmed_at or booking.created_at
    if not (now < booking.starts_at <= now + before) or confirmed > booking.starts_at - lead:
        return False
    return not (kind == "24h" and booking.starts_at <= now + REMINDERS["1h"][0])


async def _claim(session: AsyncSession, booking_id: uuid.UUID, kind: str, now: datetime) -> bool:
    column = REMINDERS[kind][1]
    result = await session.execute(
        update(Booking)
        .where(Booking.id == booking_id, column.is_(None), Booking.status == BookingStatus.confirmed)
        .values({column.key: now})
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _subject(kind: str, summary: str) -> str:
    if kind == "24h":
        return _("Reminder: %(lesson)s tomorrow") % {"lesson": summary}
    return _("Reminder: %(lesson)s starts in one hour") % {"lesson": summary}


async def _mail(session: AsyncSession, booking: Booking, kind: str, users: dict[uuid.UUID, User]) -> None:
    tutor, student = users[booking.tutor_id], users[booking.student_id]
    for recipient, other in ((tutor, student), (student, tutor)):
        with use_locale(recipient.locale, recipient.timezone):
            instrument = (await tutor_instruments(session, [booking.tutor_id])).get(booking.tutor_id)
            summary = lesson_summary(kind=booking.kind, other_name=other.display_name, instrument=instrument)
            when = format_datetime(booking.starts_at, "full")
            body = "\n\n".join(
                [
                    _subject(kind, summary),
                    _("When: %(when)s (%(zone)s)") % {"when": when, "zone": recipient.timezone},
                    _("Lesson page: %(url)s") % {"url": lesson_url(booking.id)},
                ]
            )
            await mail_queue(session, to=recipient.email, subject=_subject(kind, summary), body=body)


async def reminders_send(*, now: datetime | None = None) -> dict[str, int]:
    """Send every due reminder; returns how many lessons were reminded per kind. Idempotent."""
    now = now or datetime.now(UTC)
    sent = {kind: 0 for kind in REMINDERS}
    for kind in REMINDERS:
        async with transaction(write=False) as session:
            candidates = list(
                (
                    await session.execute(
                        select(Booking.id)
                        .where(*_due(kind, now, session.bind.dialect.name))
                        .order_by(Booking.starts_at)
                        .limit(BATCH)
                    )
                ).scalars()
            )
        for booking_id in candidates:
            try:
                async with transaction() as session:
                    booking = await session.get(Booking, booking_id)
                    if booking is None or not _is_due(booking, kind, now):
                        continue
                    if not await _claim(session, booking_id, kind, now):
                        continue  # another tick was first, or the lesson changed meanwhile
                    rows = await session.execute(
                        select(User).where(User.id.in_([booking.tutor_id, booking.student_id]))
                    )
                    users = {u.id: u for u in rows.scalars()}
                    await _mail(session, booking, kind, users)
            except Exception:  # one broken lesson must not stop the others; the next tick retries it
                log.exception("reminder %s for booking %s failed", kind, booking_id)
                continue
            sent[kind] += 1
    return sent


@periodic.every(TICK_SECONDS)
@jobs.actor(queue_name="default", max_retries=0)
async def lesson_reminders() -> None:
    await reminders_send()
