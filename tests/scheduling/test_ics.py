"""The private ICS feed (settings page, capability URL, revocation, caching) and the iCalendar
text of lesson invitations, parsed back with icalendar."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from marketplace.db import session_factory
from scheduling.ics import Person, invitation, lesson_uid
from scheduling.models import Booking, BookingKind, BookingStatus
from tests.helpers import log_in, make_user, post_form
from tests.scheduling.calendar_support import add_booking, give_instrument

FEED_RE = re.compile(r'value="(http://testserver\.local/calendar/feed/([A-Za-z0-9_-]+)\.ics)"')
START = datetime(2030, 3, 4, 17, 0, tzinfo=UTC)


def events(text: str) -> dict[str, object]:
    cal = Calendar.from_ical(text)
    return {str(ev["UID"]): ev for ev in cal.walk("VEVENT")}


async def people():
    tutor = await make_user(email="tutor@example.com", role="tutor", name="Clara Tutor", locale="de")
    student = await make_user(email="ana@example.com", name="Ana Student", tz="America/New_York")
    return tutor, student


async def reload(booking: Booking) -> Booking:
    async with session_factory()() as session:
        return await session.get(Booking, booking.id)


# ---- invitations (pure text) -----------------------------------------------------------------


async def test_a_request_invitation_has_what_google_apple_and_outlook_need():
    tutor, student = await people()
    booking = await reload(await add_booking(tutor_id=tutor.id, student_id=student.id, starts_at=START, sequence=2))
    now = datetime(2030, 3, 1, 9, 30, tzinfo=UTC)
    text = invitation(
        booking,
        method="REQUEST",
        summary="Piano lesson with Clara Tutor",
        tutor=Person("Clara Tutor", "tutor@example.com"),
        student=Person("Ana Student", "ana@example.com"),
        now=now,
    )
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    cal = Calendar.from_ical(text)
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["PRODID"]) == "-//Cadenza//Cadenza lessons//EN"
    assert str(cal["CALSCALE"]) == "GREGORIAN"
    assert str(cal["METHOD"]) == "REQUEST"
    (event,) = cal.walk("VEVENT")
    assert str(event["UID"]) == f"booking-{booking.id}@testserver.local" == lesson_uid(booking.id)
    assert event["DTSTART"].dt == START and event["DTSTART"].dt.utcoffset() == timedelta(0)
    assert event["DTEND"].dt == START + timedelta(hours=1)
    assert event["DTSTAMP"].dt == now
    assert int(event["SEQUENCE"]) == 2
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["SUMMARY"]) == "Piano lesson with Clara Tutor"
    assert f"http://testserver.local/lessons/{booking.id}" in str(event["DESCRIPTION"])
    assert str(event["ORGANIZER"]).lower() == "mailto:no-reply@cadenza.localhost"
    assert event["ORGANIZER"].params["CN"] == "Cadenza"
    attendees = sorted(str(a).lower() for a in event["ATTENDEE"])
    assert attendees == ["mailto:ana@example.com", "mailto:tutor@example.com"]
    assert {a.params["CN"] for a in event["ATTENDEE"]} == {"Clara Tutor", "Ana Student"}
    # No floating times anywhere: every date-time is written in UTC.
    for line in text.split("\r\n"):
        if line.startswith(("DTSTART", "DTEND", "DTSTAMP")):
            assert re.fullmatch(r"[A-Z-]+:\d{8}T\d{6}Z", line), line


async def test_a_cancellation_keeps_the_uid_and_says_cancelled():
    tutor, student = await people()
    booking = await add_booking(
        tutor_id=tutor.id, student_id=student.id, starts_at=START, status=BookingStatus.cancelled, sequence=3
    )
    booking = await reload(booking)
    text = invitation(
        booking,
        method="CANCEL",
        summary="Lesson",
        tutor=Person("Clara Tutor", "tutor@example.com"),
        student=Person("Ana Student", "ana@example.com"),
    )
    cal = Calendar.from_ical(text)
    assert str(cal["METHOD"]) == "CANCEL"
    (event,) = cal.walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == lesson_uid(booking.id)
    assert int(event["SEQUENCE"]) == 3


# ---- the feed --------------------------------------------------------------------------------


async def feed_address(client) -> tuple[str, str]:
    page = await client.get("/calendar")
    match = FEED_RE.search(page.text)
    assert match, "no feed address on /calendar"
    return match.group(1).replace("http://testserver.local", ""), match.group(2)


async def test_a_user_creates_a_private_address_and_the_feed_lists_their_lessons(client):
    tutor, student = await people()
    other = await make_user(email="other@example.com", role="tutor", name="Someone Else")
    await give_instrument(tutor.id, "piano")
    confirmed = await add_booking(tutor_id=tutor.id, student_id=student.id, starts_at=START)
    cancelled = await add_booking(
        tutor_id=tutor.id,
        student_id=student.id,
        starts_at=START + timedelta(days=1),
        status=BookingStatus.cancelled,
        sequence=1,
    )
    requested = await add_booking(
        tutor_id=tutor.id, student_id=student.id, starts_at=START + timedelta(days=2), status=BookingStatus.requested
    )
    trial = await add_booking(
        tutor_id=other.id,
        student_id=student.id,
        starts_at=START + timedelta(days=3),
        kind=BookingKind.trial,
        status=BookingStatus.completed,
    )
    held = await add_booking(
        tutor_id=tutor.id, student_id=student.id, starts_at=START + timedelta(days=4), status=BookingStatus.held
    )
    declined = await add_booking(
        tutor_id=tutor.id, student_id=student.id, starts_at=START + timedelta(days=5), status=BookingStatus.declined
    )
    not_hers = await add_booking(tutor_id=other.id, student_id=tutor.id, starts_at=START + timedelta(days=6))

    await log_in(client, "ana@example.com", "correct horse battery")
    page = await client.get("/calendar")
    assert page.status_code == 200
    assert '<meta name="robots" content="noindex, nofollow">' in page.text
    assert FEED_RE.search(page.text) is None  # nothing is created by looking
    created = await post_form(client, "/calendar/feed", {}, page="/calendar", follow_redirects=False)
    assert created.status_code == 303
    path, token = await feed_address(client)
    assert len(token) == 43  # secrets.token_urlsafe(32)
    await post_form(client, "/calendar/feed", {}, page="/calendar")  # pressing twice keeps the address
    assert (await feed_address(client))[1] == token

    client.cookies.clear()  # no log-in: the token is the only credential
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["cache-control"] == "private, max-age=300"
    assert "noindex" in response.headers["x-robots-tag"]
    cal = Calendar.from_ical(response.text)
    assert "METHOD" not in cal
    assert str(cal["X-WR-CALNAME"]) == "Cadenza lessons"
    assert str(cal["X-PUBLISHED-TTL"]) == "PT1H"
    assert "\r\nREFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in response.text
    found = events(response.text)
    assert set(found) == {lesson_uid(b.id) for b in (confirmed, cancelled, requested, trial)}
    assert lesson_uid(held.id) not in found and lesson_uid(declined.id) not in found
    assert lesson_uid(not_hers.id) not in found

    lesson = found[lesson_uid(confirmed.id)]
    assert str(lesson["SUMMARY"]) == "Piano lesson with Clara Tutor"
    assert str(lesson["STATUS"]) == "CONFIRMED"
    assert lesson["DTSTART"].dt == START and lesson["DTEND"].dt == START + timedelta(hours=1)
    assert f"http://testserver.local/lessons/{confirmed.id}" in str(lesson["DESCRIPTION"])
    assert "DTSTAMP" in lesson and int(lesson["SEQUENCE"]) == 0
    assert str(found[lesson_uid(cancelled.id)]["STATUS"]) == "CANCELLED"
    assert int(found[lesson_uid(cancelled.id)]["SEQUENCE"]) == 1
    assert str(found[lesson_uid(requested.id)]["STATUS"]) == "TENTATIVE"
    assert str(found[lesson_uid(trial.id)]["SUMMARY"]) == "Trial lesson with Someone Else"
    assert "DTSTART:20300304T170000Z" in response.text


async def test_the_feed_speaks_the_owners_language(client):
    tutor, student = await people()  # the tutor reads German
    await give_instrument(tutor.id, "piano")
    booking = await add_booking(tutor_id=tutor.id, student_id=student.id, starts_at=START)
    await log_in(client, "tutor@example.com", "correct horse battery")
    await post_form(client, "/calendar/feed", {}, page="/calendar")
    path, _token = await feed_address(client)
    response = await client.get(path)
    summary = str(events(response.text)[lesson_uid(booking.id)]["SUMMARY"])
    assert "Klavier" in summary and "Ana Student" in summary


async def test_the_feed_answers_304_while_nothing_changed(client):
    tutor, student = await people()
    await add_booking(tutor_id=tutor.id, student_id=student.id, starts_at=START)
    await log_in(client, "ana@example.com", "correct horse battery")
    await post_form(client, "/calendar/feed", {}, page="/calendar")
    path, _token = await feed_address(client)
    first = await client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = await client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    await add_booking(tutor_id=tutor.id, student_id=student.id, starts_at=START + timedelta(days=7))
    changed = await client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_revoking_the_address_makes_the_old_one_404(client):
    await people()
    await log_in(client, "ana@example.com", "correct horse battery")
    await post_form(client, "/calendar/feed", {}, page="/calendar")
    old_path, old_token = await feed_address(client)
    revoked = await post_form(client, "/calendar/feed/revoke", {}, page="/calendar", follow_redirects=False)
    assert revoked.status_code == 303
    new_path, new_token = await feed_address(client)
    assert new_token != old_token
    client.cookies.clear()
    assert (await client.get(old_path)).status_code == 404
    assert (await client.get(new_path)).status_code == 200


async def test_unknown_or_malformed_feed_addresses_are_404(client):
    for path in (
        "/calendar/feed/" + "x" * 43 + ".ics",
        "/calendar/feed/short.ics",
        "/calendar/feed/" + "y" * 43,
        "/calendar/feed/..%2F..%2Fetc.ics",
    ):
        assert (await client.get(path)).status_code == 404, path


async def test_a_banned_users_feed_is_gone(client):
    from sqlalchemy import update

    from marketplace.accounts.models import User
    from marketplace.db import transaction, utcnow

    await people()
    await log_in(client, "ana@example.com", "correct horse battery")
    await post_form(client, "/calendar/feed", {}, page="/calendar")
    path, _token = await feed_address(client)
    async with transaction() as session:
        await session.execute(update(User).where(User.email == "ana@example.com").values(banned_at=utcnow()))
    assert (await client.get(path)).status_code == 404


async def test_the_calendar_page_needs_a_log_in(client):
    response = await client.get("/calendar", follow_redirects=False)
    assert response.status_code in (302, 303, 401)
    response = await client.post("/calendar/feed/revoke", follow_redirects=False)
    assert response.status_code in (401, 403)
