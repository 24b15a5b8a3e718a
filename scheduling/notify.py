"""Mails about a booking's life: one entry point, :func:`notify_booking`, called by the booking
service inside its transaction (mails go out after commit through the outbox).

Each recipient gets the mail in their own language and zone. Mails about a lesson that now takes
place (confirmed, rescheduled) carry an invitation (``invite.ics``, METHOD:REQUEST) and mails about
one that will not (cancelled, declined, expired) a cancellation (``cancel.ics``, METHOD:CANCEL),
both with the lesson's one UID and its current SEQUENCE, so the recipient's calendar adds, moves or
removes the same entry (see ``scheduling.ics``).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.i18n import format_datetime, use_locale
from marketplace.i18n import gettext as _
from marketplace.mail import mail_queue
from scheduling.ics import (
    Method,
    Person,
    invitation,
    invitation_attachment,
    lesson_summary,
    lesson_url,
    tutor_instruments,
)
from scheduling.models import Booking

__all__ = ["BookingEvent", "lesson_url", "notify_booking"]


class BookingEvent(enum.StrEnum):
    held = "held"  # a student reserved a slot and is paying
    requested = "requested"  # request mode: the tutor must accept or decline
    confirmed = "confirmed"
    declined = "declined"
    expired = "expired"
    rescheduled = "rescheduled"
    cancelled = "cancelled"


def _subject(event: BookingEvent, other: str) -> str:
    match event:
        case BookingEvent.requested:
            return _("Lesson request from %(name)s") % {"name": other}
        case BookingEvent.confirmed:
            return _("Lesson booked with %(name)s") % {"name": other}
        case BookingEvent.declined:
            return _("Lesson request declined by %(name)s") % {"name": other}
        case BookingEvent.expired:
            return _("Lesson request with %(name)s expired") % {"name": other}
        case BookingEvent.rescheduled:
            return _("Lesson with %(name)s moved") % {"name": other}
        case BookingEvent.cancelled:
            return _("Lesson with %(name)s cancelled") % {"name": other}
    return _("Lesson with %(name)s") % {"name": other}


def calendar_method(event: BookingEvent) -> Method | None:
    """Which iTIP message a mail about ``event`` carries (None: no calendar attachment)."""
    if event in (BookingEvent.confirmed, BookingEvent.rescheduled):
        return "REQUEST"
    if event in (BookingEvent.cancelled, BookingEvent.declined, BookingEvent.expired):
        return "CANCEL"
    return None


async def notify_booking(session: AsyncSession, booking: Booking, event: BookingEvent) -> None:
    """Queue the mails for ``event`` to the people it concerns (both sides for most events)."""
    if event == BookingEvent.held:
        return
    if booking.id is None or booking.created_at is None:
        await session.flush()  # the invitation needs the lesson's id (its UID) and timestamps
    tutor = await session.get(User, booking.tutor_id)
    student = await session.get(User, booking.student_id)
    assert tutor is not None and student is not None
    recipients = [(tutor, student), (student, tutor)]
    if event == BookingEvent.requested:
        recipients = [(tutor, student)]
    elif event in (BookingEvent.declined, BookingEvent.expired):
        recipients = [(student, tutor)]
    method = calendar_method(event)
    now = datetime.now(UTC)
    people = (Person(tutor.display_name, tutor.email), Person(student.display_name, student.email))
    for recipient, other in recipients:
        with use_locale(recipient.locale, recipient.timezone):
            when = format_datetime(booking.starts_at)
            body = "\n\n".join(
                [
                    _subject(event, other.display_name),
                    _("When: %(when)s (%(zone)s)") % {"when": when, "zone": recipient.timezone},
                    _("Details: %(url)s") % {"url": lesson_url(booking.id)},
                ]
            )
            attachments = None
            if method is not None:
                instrument = (await tutor_instruments(session, [booking.tutor_id])).get(booking.tutor_id)
                summary = lesson_summary(kind=booking.kind, other_name=other.display_name, instrument=instrument)
                ics = invitation(booking, method=method, summary=summary, tutor=people[0], student=people[1], now=now)
                attachments = [invitation_attachment(ics, method)]
            await mail_queue(
                session,
                to=recipient.email,
                subject=_subject(event, other.display_name),
                body=body,
                attachments=attachments,
            )
