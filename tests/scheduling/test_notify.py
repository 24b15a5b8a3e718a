"""Booking mails carry calendar data: an invitation (METHOD:REQUEST) when a lesson is confirmed or
moved, a cancellation (METHOD:CANCEL) when it is cancelled, declined or expires; and over SMTP
the invitation is a real text/calendar part with its method."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from marketplace.db import transaction
from marketplace.mail import mail_deliver
from marketplace.settings import get_settings
from scheduling.ics import lesson_uid
from scheduling.models import Booking, BookingStatus
from scheduling.notify import BookingEvent, notify_booking
from tests.core.test_jobs_mail import free_port
from tests.helpers import make_user, outbox
from tests.scheduling.calendar_support import add_booking, give_instrument

START = datetime(2030, 5, 6, 16, 0, tzinfo=UTC)


async def setup(**kw) -> Booking:
    tutor = await make_user(
        email="tutor@example.com", role="tutor", name="Clara Tutor", locale="de", tz="Europe/Berlin"
    )
    student = await make_user(email="ana@example.com", name="Ana Student", tz="America/New_York")
    await give_instrument(tutor.id, "piano")
    return await add_booking(tutor_id=tutor.id, student_id=student.id, starts_at=START, **kw)


async def notify(booking_id, event: BookingEvent, **changes) -> None:
    async with transaction() as session:
        booking = await session.get(Booking, booking_id)
        for key, value in changes.items():
            setattr(booking, key, value)
        await session.flush()
        await notify_booking(session, booking, event)


def calendar_of(message) -> tuple[dict, Calendar]:
    (attachment,) = message.attachments
    return attachment, Calendar.from_ical(attachment["content"])


async def test_confirmation_mails_carry_an_invitation_for_both_people():
    booking = await setup()
    await notify(booking.id, BookingEvent.confirmed)
    for address, other, summary in (
        ("ana@example.com", "Clara Tutor", "Piano lesson with Clara Tutor"),
        ("tutor@example.com", "Ana Student", "Klavier"),
    ):
        (mail,) = await outbox(address)
        attachment, cal = calendar_of(mail)
        assert attachment["filename"] == "invite.ics"
        assert attachment["content_type"] == "text/calendar; method=REQUEST; charset=UTF-8"
        assert str(cal["METHOD"]) == "REQUEST" and str(cal["VERSION"]) == "2.0" and "PRODID" in cal
        (event,) = cal.walk("VEVENT")
        assert str(event["UID"]) == lesson_uid(booking.id)
        assert str(event["STATUS"]) == "CONFIRMED"
        assert event["DTSTART"].dt == START and event["DTSTART"].dt.tzinfo is not None
        assert int(event["SEQUENCE"]) == 0
        assert summary in str(event["SUMMARY"]) and other in str(event["SUMMARY"])
        assert sorted(str(a).lower() for a in event["ATTENDEE"]) == [
            "mailto:ana@example.com",
            "mailto:tutor@example.com",
        ]
        assert str(event["ORGANIZER"]).lower() == "mailto:no-reply@cadenza.localhost"


async def test_a_moved_lesson_updates_the_same_entry_with_a_higher_sequence():
    booking = await setup(sequence=1)
    await notify(booking.id, BookingEvent.confirmed)
    moved = START + timedelta(days=2)
    await notify(
        booking.id,
        BookingEvent.rescheduled,
        starts_at=moved,
        ends_at=moved + timedelta(hours=1),
        blocked_from=moved,
        blocked_until=moved + timedelta(hours=1),
        sequence=2,
    )
    first, second = await outbox("ana@example.com")
    _, before = calendar_of(first)
    attachment, after = calendar_of(second)
    assert attachment["filename"] == "invite.ics"
    (old,), (new,) = before.walk("VEVENT"), after.walk("VEVENT")
    assert str(new["UID"]) == str(old["UID"])
    assert int(new["SEQUENCE"]) == 2 > int(old["SEQUENCE"])
    assert new["DTSTART"].dt == moved and str(after["METHOD"]) == "REQUEST"


async def test_cancellation_declines_and_expiry_send_a_cancel_for_the_same_uid():
    booking = await setup(sequence=1)
    await notify(booking.id, BookingEvent.cancelled, status=BookingStatus.cancelled, sequence=2)
    for address in ("ana@example.com", "tutor@example.com"):
        (mail,) = await outbox(address)
        attachment, cal = calendar_of(mail)
        assert attachment["filename"] == "cancel.ics"
        assert attachment["content_type"] == "text/calendar; method=CANCEL; charset=UTF-8"
        assert str(cal["METHOD"]) == "CANCEL"
        (event,) = cal.walk("VEVENT")
        assert str(event["STATUS"]) == "CANCELLED"
        assert str(event["UID"]) == lesson_uid(booking.id) and int(event["SEQUENCE"]) == 2

    for event_kind, status in (
        (BookingEvent.declined, BookingStatus.declined),
        (BookingEvent.expired, BookingStatus.expired),
    ):
        request = await add_booking(
            tutor_id=booking.tutor_id,
            student_id=booking.student_id,
            starts_at=START + timedelta(days=10),
            status=BookingStatus.requested,
        )
        await notify(request.id, event_kind, status=status, sequence=1)
        mail = (await outbox("ana@example.com"))[-1]
        _attachment, cal = calendar_of(mail)
        assert str(cal["METHOD"]) == "CANCEL"
        assert str(cal.walk("VEVENT")[0]["UID"]) == lesson_uid(request.id)
    assert len(await outbox("tutor@example.com")) == 1  # declines and expiry go to the student only


async def test_a_request_mail_has_no_invitation_yet():
    booking = await setup(status=BookingStatus.requested)
    await notify(booking.id, BookingEvent.requested)
    (mail,) = await outbox("tutor@example.com")
    assert mail.attachments is None
    assert await outbox("ana@example.com") == []


async def test_over_smtp_the_invitation_is_a_text_calendar_part_with_its_method(monkeypatch):
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    booking = await setup()
    await notify(booking.id, BookingEvent.confirmed)
    (mail,) = await outbox("ana@example.com")
    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{port}")
        get_settings.cache_clear()
        assert await mail_deliver(message_id=mail.id) == "sent"
    finally:
        controller.stop()
        monkeypatch.delenv("SMTP_URL")
        get_settings.cache_clear()
    (envelope,) = received
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message.get_content_type() == "multipart/mixed"
    parts = {part.get_content_type(): part for part in message.walk()}
    assert parts["text/plain"].get_content().strip().startswith("Lesson booked with Clara Tutor")
    calendar_part = parts["text/calendar"]
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_param("charset").lower() == "utf-8"
    assert calendar_part.get_content_disposition() is None  # shown as an invitation, not only a file
    ics = calendar_part.get_payload(decode=True)
    assert b"\r\nMETHOD:REQUEST\r\n" in ics  # line ends kept as iCalendar wants them
    event = Calendar.from_ical(ics).walk("VEVENT")[0]
    assert str(event["UID"]) == lesson_uid(booking.id)
    attachment = parts["application/ics"]
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_payload(decode=True) == ics


async def test_the_admin_outbox_names_the_attachments(client):
    from tests.helpers import log_in

    booking = await setup()
    await notify(booking.id, BookingEvent.confirmed)
    await make_user(email="admin@example.com", role="admin")
    await log_in(client, "admin@example.com", "correct horse battery")
    page = await client.get("/admin/outbox", params={"to": "ana@example.com"})
    assert page.status_code == 200
    assert '<span class="mail-attachment">invite.ics (text/calendar)</span>' in page.text


async def test_mail_queue_refuses_malformed_attachments():
    import pytest

    from marketplace.mail import mail_queue

    for bad in (
        [{"filename": "", "content_type": "text/calendar", "content": "x"}],
        [{"filename": "a.ics", "content_type": "calendar", "content": "x"}],
        [{"filename": "a.ics", "content_type": "text/calendar", "content": b"bytes"}],
        [{"filename": "a.ics", "content_type": "text/calendar", "content": "x" * 300_000}],
    ):
        with pytest.raises(ValueError):
            async with transaction() as session:
                await mail_queue(session, to="ana@example.com", subject="s", body="b", attachments=bad)
    assert await outbox("ana@example.com") == []
