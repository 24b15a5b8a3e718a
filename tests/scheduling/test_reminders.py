"""Lesson reminders: 24 hours and 1 hour before each confirmed lesson, to both people in their own
language and zone, exactly once, never for lessons that will not take place."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from marketplace import periodic
from marketplace.db import session_factory
from marketplace.i18n import format_datetime, use_locale
from scheduling.models import Booking, BookingStatus
from scheduling.reminders import reminders_send
from tests.helpers import make_user, outbox
from tests.scheduling.calendar_support import add_booking, give_instrument

NOW = datetime(2030, 6, 3, 8, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=5)


async def people():
    tutor = await make_user(
        email="tutor@example.com", role="tutor", name="Clara Tutor", locale="de", tz="Europe/Berlin"
    )
    student = await make_user(email="ana@example.com", name="Ana Student", tz="America/New_York")
    await give_instrument(tutor.id, "piano")
    return tutor, student


async def lesson(tutor, student, starts_at: datetime, **kw) -> Booking:
    kw.setdefault("confirmed_at", LONG_AGO)
    kw.setdefault("created_at", LONG_AGO)
    return await add_booking(tutor_id=tutor.id, student_id=student.id, starts_at=starts_at, **kw)


async def reload(booking: Booking) -> Booking:
    async with session_factory()() as session:
        return await session.get(Booking, booking.id)


async def test_the_reminder_job_runs_every_five_minutes():
    assert periodic.registered()["lesson_reminders"].seconds == 300


async def test_a_day_before_both_people_are_reminded_once_in_their_language_and_zone():
    tutor, student = await people()
    starts = NOW + timedelta(hours=23, minutes=58)
    booking = await lesson(tutor, student, starts)
    assert await reminders_send(now=NOW) == {"24h": 1, "1h": 0}
    assert await reminders_send(now=NOW) == {"24h": 0, "1h": 0}
    assert await reminders_send(now=NOW + timedelta(minutes=5)) == {"24h": 0, "1h": 0}

    (to_student,) = await outbox("ana@example.com")
    assert to_student.subject == "Reminder: Piano lesson with Clara Tutor tomorrow"
    with use_locale("en", "America/New_York"):
        assert format_datetime(starts, "full") in to_student.body_text
    assert "(America/New_York)" in to_student.body_text
    assert f"http://testserver.local/lessons/{booking.id}" in to_student.body_text

    (to_tutor,) = await outbox("tutor@example.com")
    assert "Klavier" in to_tutor.subject and "Ana Student" in to_tutor.subject
    with use_locale("de", "Europe/Berlin"):
        assert format_datetime(starts, "full") in to_tutor.body_text  # German words, Berlin time
    assert (await reload(booking)).reminder_24h_sent_at == NOW


async def test_an_hour_before_comes_the_second_reminder():
    tutor, student = await people()
    starts = NOW + timedelta(hours=24)
    booking = await lesson(tutor, student, starts)
    assert await reminders_send(now=NOW) == {"24h": 1, "1h": 0}
    assert await reminders_send(now=starts - timedelta(hours=2)) == {"24h": 0, "1h": 0}
    assert await reminders_send(now=starts - timedelta(minutes=58)) == {"24h": 0, "1h": 1}
    assert await reminders_send(now=starts - timedelta(minutes=53)) == {"24h": 0, "1h": 0}
    mails = await outbox("ana@example.com")
    assert [m.subject for m in mails] == [
        "Reminder: Piano lesson with Clara Tutor tomorrow",
        "Reminder: Piano lesson with Clara Tutor starts in one hour",
    ]
    assert len(await outbox("tutor@example.com")) == 2
    assert (await reload(booking)).reminder_1h_sent_at == starts - timedelta(minutes=58)


async def test_a_missed_tick_still_sends_but_a_started_lesson_gets_nothing():
    tutor, student = await people()
    await lesson(tutor, student, NOW + timedelta(hours=5))  # the clock was down at the 24 h mark
    await lesson(tutor, student, NOW + timedelta(minutes=20))  # ... and at the 1 h mark of this one
    await lesson(tutor, student, NOW - timedelta(minutes=1), minutes=20)  # already started
    assert await reminders_send(now=NOW) == {"24h": 1, "1h": 1}
    subjects = sorted(m.subject for m in await outbox("ana@example.com"))
    assert subjects == [
        "Reminder: Piano lesson with Clara Tutor starts in one hour",
        "Reminder: Piano lesson with Clara Tutor tomorrow",
    ]


async def test_no_day_before_reminder_once_the_lesson_is_within_the_hour():
    tutor, student = await people()
    booking = await lesson(tutor, student, NOW + timedelta(minutes=45))
    assert await reminders_send(now=NOW) == {"24h": 0, "1h": 1}
    assert (await reload(booking)).reminder_24h_sent_at is None
    assert len(await outbox("ana@example.com")) == 1


async def test_lessons_that_will_not_take_place_are_never_reminded():
    tutor, student = await people()
    for offset, status in enumerate(
        (
            BookingStatus.cancelled,
            BookingStatus.requested,
            BookingStatus.held,
            BookingStatus.declined,
            BookingStatus.expired,
            BookingStatus.completed,
        )
    ):  # ten minutes each, side by side (active ones may not overlap)
        await lesson(tutor, student, NOW + timedelta(minutes=10 * offset), minutes=10, status=status)
        await lesson(tutor, student, NOW + timedelta(hours=20, minutes=10 * offset), minutes=10, status=status)
    assert await reminders_send(now=NOW) == {"24h": 0, "1h": 0}
    assert await outbox("ana@example.com") == [] and await outbox("tutor@example.com") == []


async def test_a_lesson_booked_shortly_before_gets_no_day_before_reminder():
    """Documented choice: booked less than 25 hours ahead, the confirmation mail is the reminder."""
    tutor, student = await people()
    starts = NOW + timedelta(hours=20)
    booking = await lesson(
        tutor, student, starts, confirmed_at=NOW - timedelta(hours=2), created_at=NOW - timedelta(hours=2)
    )
    early = await lesson(
        tutor,
        student,
        starts + timedelta(hours=2),
        confirmed_at=NOW - timedelta(hours=6),
        created_at=NOW - timedelta(hours=6),
    )  # booked 28 hours ahead: reminded
    assert await reminders_send(now=NOW) == {"24h": 1, "1h": 0}
    assert (await reload(booking)).reminder_24h_sent_at is None
    assert (await reload(early)).reminder_24h_sent_at == NOW
    # The hour-before reminder still comes for the late booking.
    assert await reminders_send(now=starts - timedelta(minutes=55)) == {"24h": 0, "1h": 1}
    assert (await reload(booking)).reminder_1h_sent_at is not None


async def test_a_lesson_booked_within_its_last_hour_gets_no_reminder():
    tutor, student = await people()
    await lesson(tutor, student, NOW + timedelta(minutes=40), confirmed_at=NOW - timedelta(minutes=5))
    assert await reminders_send(now=NOW) == {"24h": 0, "1h": 0}


async def test_concurrent_ticks_remind_each_lesson_once():
    tutor, student = await people()
    for hours in (2, 5, 9, 13, 22):
        await lesson(tutor, student, NOW + timedelta(hours=hours))
    results = await asyncio.gather(*(reminders_send(now=NOW) for _ in range(4)))
    assert sum(r["24h"] for r in results) == 5
    assert len(await outbox("ana@example.com")) == 5 and len(await outbox("tutor@example.com")) == 5


async def test_the_claim_is_taken_once_and_only_for_a_confirmed_lesson():
    """The claiming UPDATE re-checks the status: a lesson cancelled after the job listed it is skipped."""
    from sqlalchemy import update

    from marketplace.db import transaction
    from scheduling.reminders import _claim

    tutor, student = await people()
    booking = await lesson(tutor, student, NOW + timedelta(hours=3))
    async with transaction() as session:
        assert await _claim(session, booking.id, "24h", NOW) is True
        assert await _claim(session, booking.id, "24h", NOW) is False
    async with transaction() as session:
        await session.execute(update(Booking).where(Booking.id == booking.id).values(status=BookingStatus.cancelled))
        assert await _claim(session, booking.id, "1h", NOW) is False
    assert (await reload(booking)).reminder_1h_sent_at is None


async def test_a_failed_transaction_releases_the_claim_with_its_mails(monkeypatch):
    from scheduling import reminders

    tutor, student = await people()
    booking = await lesson(tutor, student, NOW + timedelta(hours=3))

    async def broken_mail(*args, **kwargs):
        raise RuntimeError("template bug")

    monkeypatch.setattr(reminders, "_mail", broken_mail)
    assert await reminders_send(now=NOW) == {"24h": 0, "1h": 0}
    assert (await reload(booking)).reminder_24h_sent_at is None  # rolled back: the next tick retries
    monkeypatch.undo()
    assert await reminders_send(now=NOW) == {"24h": 1, "1h": 0}
