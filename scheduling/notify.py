"""Mails about a booking's life: one entry point, :func:`notify_booking`, called by the booking
service inside its transaction (mails go out after commit through the outbox).

Each recipient gets the mail in their own language and zone. The calendars work attaches an
.ics (METHOD:REQUEST for new and moved lessons, METHOD:CANCEL for cancelled ones) to these mails.
"""

from __future__ import annotations

import enum
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.i18n import format_datetime, use_locale
from marketplace.i18n import gettext as _
from marketplace.mail import mail_queue
from marketplace.settings import get_settings
from scheduling.models import Booking


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


def lesson_url(booking_id: uuid.UUID) -> str:
    return f"{get_settings().base_url.rstrip('/')}/lessons/{booking_id}"


async def notify_booking(session: AsyncSession, booking: Booking, event: BookingEvent) -> None:
    """Queue the mails for ``event`` to the people it concerns (both sides for most events)."""
    if event == BookingEvent.held:
        return
    tutor = await session.get(User, booking.tutor_id)
    student = await session.get(User, booking.student_id)
    assert tutor is not None and student is not None
    recipients = [(tutor, student), (student, tutor)]
    if event == BookingEvent.requested:
        recipients = [(tutor, student)]
    elif event in (BookingEvent.declined, BookingEvent.expired):
        recipients = [(student, tutor)]
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
            await mail_queue(session, to=recipient.email, subject=_subject(event, other.display_name), body=body)
