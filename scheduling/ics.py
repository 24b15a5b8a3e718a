"""iCalendar (RFC 5545) text for lessons: the private feed and the invitations attached to booking
mails (iTIP, RFC 5546: METHOD:REQUEST for a new or moved lesson, METHOD:CANCEL for one that will not
take place).

Every lesson has one UID for its whole life (``booking-{id}@{host}``) and the booking's SEQUENCE,
which the booking service raises on every change, so calendar clients update or remove the entry
they already have instead of adding a second one. All times are written in UTC (no floating
times, no VTIMEZONE needed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Literal
from urllib.parse import urlsplit

from icalendar import Calendar, Event, vCalAddress, vDuration, vText
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.i18n import current_locale, use_locale
from marketplace.i18n import gettext as _
from marketplace.settings import get_settings
from marketplace.tutors.models import TaxonomyKind, TaxonomyTerm, TutorProfile
from scheduling.models import PAID_STATUSES, Booking, BookingKind, BookingStatus

PRODID = "-//Cadenza//Cadenza lessons//EN"
Method = Literal["REQUEST", "CANCEL"]

#: Lessons in a feed: paid ones (confirmed, completed and their after-lesson states), requests
#: still waiting for the tutor (TENTATIVE) and cancelled ones (STATUS:CANCELLED, so a subscribed
#: client removes or strikes them). Holds, declined and expired requests never were lessons.
FEED_STATUSES = (*PAID_STATUSES, BookingStatus.requested, BookingStatus.cancelled)
#: How far back a feed goes; everything upcoming is always in it.
FEED_PAST = timedelta(days=365)
FEED_REFRESH = "PT1H"


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    email: str


def host() -> str:
    return urlsplit(get_settings().base_url).hostname or "cadenza.localhost"


def lesson_uid(booking_id: uuid.UUID) -> str:
    """The lesson's UID, the same in the feed and in every invitation about it."""
    return f"booking-{booking_id}@{host()}"


def lesson_url(booking_id: uuid.UUID) -> str:
    return f"{get_settings().base_url.rstrip('/')}/lessons/{booking_id}"


def platform() -> Person:
    """The organizer of every lesson invitation: the platform's sender address (MAIL_FROM)."""
    name, address = parseaddr(get_settings().mail_from)
    return Person(name=name or "Cadenza", email=address or f"no-reply@{host()}")


def lesson_summary(*, kind: BookingKind, other_name: str, instrument: str | None) -> str:
    """The lesson's title in the current locale: "Piano lesson with Ana", "Trial lesson with Ana"."""
    if kind == BookingKind.trial:
        return _("Trial lesson with %(name)s") % {"name": other_name}
    if instrument:
        return _("%(instrument)s lesson with %(name)s") % {"instrument": instrument, "name": other_name}
    return _("Lesson with %(name)s") % {"name": other_name}


def lesson_description(booking: Booking) -> str:
    lines = [_("Lesson page: %(url)s") % {"url": lesson_url(booking.id)}]
    if booking.status == BookingStatus.cancelled:
        lines.insert(0, _("This lesson was cancelled."))
    return "\n".join(lines)


def feed_status(status: BookingStatus) -> str:
    if status == BookingStatus.cancelled:
        return "CANCELLED"
    if status == BookingStatus.requested:
        return "TENTATIVE"
    return "CONFIRMED"


def _address(person: Person, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    address.params["CN"] = vText(person.name)
    for key, value in params.items():
        address.params[key] = vText(value)
    return address


def lesson_event(
    booking: Booking,
    *,
    summary: str,
    dtstamp: datetime,
    status: str,
    organizer: Person | None = None,
    attendees: Sequence[Person] = (),
) -> Event:
    event = Event()
    event.add("uid", lesson_uid(booking.id))
    event.add("dtstamp", dtstamp.astimezone(UTC))
    event.add("dtstart", booking.starts_at.astimezone(UTC))
    event.add("dtend", booking.ends_at.astimezone(UTC))
    event.add("sequence", booking.sequence)
    event.add("summary", summary)
    event.add("description", lesson_description(booking))
    event.add("url", lesson_url(booking.id))
    event.add("status", status)
    event.add("transp", "TRANSPARENT" if status == "CANCELLED" else "OPAQUE")
    if booking.created_at is not None:
        event.add("created", booking.created_at.astimezone(UTC))
    if booking.updated_at is not None:
        event.add("last-modified", booking.updated_at.astimezone(UTC))
    if organizer is not None:
        event.add("organizer", _address(organizer))
    for person in attendees:
        event.add(
            "attendee",
            _address(person, ROLE="REQ-PARTICIPANT", PARTSTAT="ACCEPTED", CUTYPE="INDIVIDUAL", RSVP="FALSE"),
        )
    return event


def _calendar(*, method: Method | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method:
        cal.add("method", method)
    return cal


def invitation(
    booking: Booking, *, method: Method, summary: str, tutor: Person, student: Person, now: datetime | None = None
) -> str:
    """An iTIP message about one lesson (text with CRLF line ends).

    REQUEST carries STATUS:CONFIRMED and adds or updates the lesson in the recipient's calendar;
    CANCEL carries STATUS:CANCELLED and removes it. Both name the platform as ORGANIZER and the
    tutor and the student as ATTENDEEs, which Google, Apple and Outlook require to accept an invite.
    """
    cal = _calendar(method=method)
    cal.add_component(
        lesson_event(
            booking,
            summary=summary,
            dtstamp=now or datetime.now(UTC),
            status="CONFIRMED" if method == "REQUEST" else "CANCELLED",
            organizer=platform(),
            attendees=(tutor, student),
        )
    )
    return cal.to_ical().decode("utf-8")


def invitation_attachment(ics: str, method: Method) -> dict[str, str]:
    """The outbox attachment for :func:`invitation`'s text."""
    return {
        "filename": "invite.ics" if method == "REQUEST" else "cancel.ics",
        "content_type": f"text/calendar; method={method}; charset=UTF-8",
        "content": ics,
    }


# ---- reading what the summaries need ---------------------------------------------------------


async def tutor_instruments(session: AsyncSession, tutor_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The instrument to name a tutor's lessons by, in the current locale: only for tutors whose
    live profile lists exactly one instrument (a booking does not record which of several it is for).
    Two queries whatever the number of tutors."""
    ids = set(tutor_ids)
    if not ids:
        return {}
    profiles = await session.execute(
        select(TutorProfile.user_id, TutorProfile.live).where(TutorProfile.user_id.in_(ids))
    )
    slugs: dict[uuid.UUID, str] = {}
    for user_id, live in profiles:
        items = (live or {}).get("instruments") or []
        if len(items) == 1 and isinstance(items[0], dict) and items[0].get("slug"):
            slugs[user_id] = items[0]["slug"]
    if not slugs:
        return {}
    terms = await session.execute(
        select(TaxonomyTerm).where(
            TaxonomyTerm.kind == TaxonomyKind.instrument, TaxonomyTerm.slug.in_(set(slugs.values()))
        )
    )
    locale = current_locale()
    names = {term.slug: term.name(locale) for term in terms.scalars()}
    return {user_id: names[slug] for user_id, slug in slugs.items() if slug in names}


async def feed_text(session: AsyncSession, user: User, *, now: datetime | None = None) -> str:
    """The user's private feed: every lesson as tutor or student (see FEED_STATUSES), in the
    user's language. DTSTAMP is the lesson's last change, so the text (and its ETag) changes only
    when a lesson does. Four queries whatever the number of lessons."""
    now = now or datetime.now(UTC)
    bookings = list(
        (
            await session.execute(
                select(Booking)
                .where(
                    or_(Booking.tutor_id == user.id, Booking.student_id == user.id),
                    Booking.status.in_(FEED_STATUSES),
                    Booking.ends_at >= now - FEED_PAST,
                )
                .order_by(Booking.starts_at, Booking.id)
            )
        ).scalars()
    )
    other_ids = {b.student_id if b.tutor_id == user.id else b.tutor_id for b in bookings}
    names = dict(
        (await session.execute(select(User.id, User.display_name).where(User.id.in_(other_ids)))).all()
        if other_ids
        else []
    )
    with use_locale(user.locale, user.timezone):
        instruments = await tutor_instruments(session, {b.tutor_id for b in bookings})
        cal = _calendar()
        cal.add("x-wr-calname", _("Cadenza lessons"))
        cal.add("x-wr-caldesc", _("Your lessons on Cadenza as tutor and as student."))
        cal.add("name", _("Cadenza lessons"))
        cal.add("refresh-interval", vDuration(timedelta(hours=1)), parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", FEED_REFRESH)
        for booking in bookings:
            other = booking.student_id if booking.tutor_id == user.id else booking.tutor_id
            summary = lesson_summary(
                kind=booking.kind, other_name=names.get(other, "?"), instrument=instruments.get(booking.tutor_id)
            )
            cal.add_component(
                lesson_event(booking, summary=summary, dtstamp=booking.updated_at, status=feed_status(booking.status))
            )
    return cal.to_ical().decode("utf-8")
