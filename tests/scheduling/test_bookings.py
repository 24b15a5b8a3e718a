"""The booking service: every rule of holds, series, payment, requests, rescheduling, cancellation,
completion, no-shows, expiry and reliability, with their messages and idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from marketplace.db import session_factory, transaction
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.mail import OutboxMessage
from marketplace.tutors.models import ProfileStatus, TutorProfile
from scheduling import bookings as svc
from scheduling.models import MAX_RESCHEDULES, Availability, Booking, BookingKind, BookingMode, BookingStatus
from tests.scheduling.bookings_support import (
    PRICE_60,
    TRIAL_PRICE,
    bookable_tutor,
    enable_offline_payouts,
    next_hour,
    student,
)

START = next_hour(days=3)
NOW = START - timedelta(days=2)


async def hold(stu, tutor, start=START, duration=60, now=NOW, **kw) -> Booking:
    async with transaction() as session:
        return await svc.booking_hold(
            session, student=stu, tutor_user_id=tutor.id, starts_at=start, duration=duration, now=now, **kw
        )


async def call(fn, **kw):
    async with transaction() as session:
        return await fn(session, **kw)


async def get(booking_id) -> Booking:
    async with session_factory()() as session:
        return await session.get(Booking, booking_id)


async def mails() -> list[OutboxMessage]:
    async with session_factory()() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.created_at))).scalars())


async def set_calendar(tutor, **fields):
    async with transaction() as session:
        avail = (await session.execute(select(Availability).where(Availability.tutor_id == tutor.id))).scalar_one()
        for key, value in fields.items():
            setattr(avail, key, value)


async def confirmed(stu, tutor, start=START, **kw) -> Booking:
    b = await hold(stu, tutor, start=start, **kw)
    return await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW + timedelta(minutes=1))


# ---- holds ---------------------------------------------------------------------------------


async def test_hold_reserves_the_slot_at_the_profile_price_for_fifteen_minutes():
    tutor = await bookable_tutor()
    stu = await student()
    b = await hold(stu, tutor)
    assert b.status == BookingStatus.held
    assert (b.starts_at, b.ends_at) == (START, START + timedelta(minutes=60))
    assert b.hold_expires_at == NOW + timedelta(minutes=15)
    assert (b.price_amount, b.currency, b.kind) == (PRICE_60, "EUR", BookingKind.lesson)


async def test_hold_minutes_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BOOKING_HOLD_MINUTES", "7")
    tutor = await bookable_tutor()
    b = await hold(await student(), tutor)
    assert b.hold_expires_at == NOW + timedelta(minutes=7)


async def test_blocked_range_includes_the_tutors_buffers():
    tutor = await bookable_tutor(buffer_before=10, buffer_after=15)
    b = await hold(await student(), tutor)
    assert b.blocked_from == START - timedelta(minutes=10)
    assert b.blocked_until == START + timedelta(minutes=75)


async def test_a_second_hold_on_the_same_slot_is_a_409_conflict():
    tutor = await bookable_tutor()
    await hold(await student(), tutor)
    with pytest.raises(svc.SlotTaken) as err:
        await hold(await student("other@example.com"), tutor)
    assert err.value.status_code == 409
    assert err.value.message == "This slot was just taken. Please choose another time."


async def test_buffers_keep_the_neighbouring_slot_taken():
    tutor = await bookable_tutor(buffer_after=30)
    await hold(await student(), tutor)
    with pytest.raises(Conflict):
        await hold(await student("o@example.com"), tutor, start=START + timedelta(minutes=60))
    ok = await hold(await student("p@example.com"), tutor, start=START + timedelta(minutes=90))
    assert ok.status == BookingStatus.held


async def test_a_lapsed_hold_is_expired_and_its_slot_sold_again():
    tutor = await bookable_tutor()
    first = await hold(await student(), tutor)
    later = NOW + timedelta(minutes=16)
    second = await hold(await student("o@example.com"), tutor, now=later)
    assert second.status == BookingStatus.held
    assert (await get(first.id)).status == BookingStatus.expired


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (NOW - timedelta(hours=1), "This time is in the past. Please choose a time in the future."),
        (NOW + timedelta(hours=3), "This tutor needs at least 12 hours notice. Please choose a later time."),
        (NOW + timedelta(days=61), "This tutor takes bookings at most 60 days ahead."),
        (START + timedelta(minutes=10), "This time is not available. Please choose one of the tutor's free times."),
    ],
    ids=["past", "notice", "horizon", "off-grid"],
)
async def test_start_times_outside_the_rules_are_refused_with_a_clear_message(start, message):
    tutor = await bookable_tutor(notice_minutes=12 * 60)
    with pytest.raises(ValidationFailed) as err:
        await hold(await student(), tutor, start=start)
    assert err.value.message == message
    assert err.value.status_code == 422


async def test_outside_the_weekly_windows_is_not_available():
    tutor = await bookable_tutor(weekly={str(d): [["09:00", "10:00"]] for d in range(7)})
    stu = await student()
    with pytest.raises(ValidationFailed, match="not available"):
        await hold(stu, tutor, start=START)  # 10:00-11:00
    ok = await hold(stu, tutor, start=START - timedelta(hours=1))
    assert ok.status == BookingStatus.held


async def test_naive_start_is_refused():
    tutor = await bookable_tutor()
    with pytest.raises(ValidationFailed, match="valid start time"):
        await hold(await student(), tutor, start=START.replace(tzinfo=None))


async def test_booking_oneself_is_refused():
    tutor = await bookable_tutor()
    with pytest.raises(ValidationFailed, match="yourself"):
        await hold(tutor, tutor)


async def test_only_offered_lengths_can_be_booked():
    tutor = await bookable_tutor()
    with pytest.raises(ValidationFailed, match="does not offer 90-minute lessons"):
        await hold(await student(), tutor, duration=90)


async def test_tutor_without_calendar_or_public_profile_cannot_be_booked():
    from tests.profiles.support import approved_tutor

    bare, _ = await approved_tutor(email="bare@example.com", photo=False)
    await enable_offline_payouts(bare.id)
    stu = await student()
    with pytest.raises(ValidationFailed, match="not opened their calendar"):
        await hold(stu, bare)
    tutor = await bookable_tutor()
    async with transaction() as session:
        profile = (await session.execute(select(TutorProfile).where(TutorProfile.user_id == tutor.id))).scalar_one()
        profile.status = ProfileStatus.suspended
    with pytest.raises(NotFound, match="not taking bookings"):
        await hold(stu, tutor)


async def test_a_tutor_without_enabled_payouts_takes_no_booking_and_no_series():
    tutor = await bookable_tutor(payouts=False)
    stu = await student()
    with pytest.raises(svc.BookingsClosed, match="bookings open once their payouts are set up") as refused:
        await hold(stu, tutor)
    assert refused.value.status_code == 409
    with pytest.raises(svc.BookingsClosed):
        async with transaction() as session:
            await svc.booking_hold_series(
                session, student=stu, tutor_user_id=tutor.id, first_start=START, duration=60, weeks=2, now=NOW
            )
    async with session_factory()() as session:
        assert (await session.execute(select(func.count()).select_from(Booking))).scalar_one() == 0
    await enable_offline_payouts(tutor.id)
    assert (await hold(stu, tutor)).status == BookingStatus.held


async def test_banned_tutor_cannot_be_booked():
    tutor = await bookable_tutor()
    async with transaction() as session:
        from marketplace.accounts.models import User

        (await session.get(User, tutor.id)).banned_at = NOW
    with pytest.raises(NotFound):
        await hold(await student(), tutor)


async def test_one_trial_per_pair_unless_the_earlier_one_fell_through():
    tutor = await bookable_tutor()
    stu = await student()
    trial = await hold(stu, tutor, duration=30, trial=True)
    assert (trial.kind, trial.price_amount) == (BookingKind.trial, TRIAL_PRICE)
    with pytest.raises(ValidationFailed, match="already had a trial"):
        await hold(stu, tutor, start=START + timedelta(hours=2), duration=30, trial=True)
    await call(svc.booking_cancel, actor=stu, booking_id=trial.id, now=NOW)
    again = await hold(stu, tutor, start=START + timedelta(hours=2), duration=30, trial=True)
    assert again.kind == BookingKind.trial
    other = await hold(await student("o@example.com"), tutor, start=START + timedelta(hours=4), duration=30, trial=True)
    assert other.kind == BookingKind.trial


async def test_the_database_keeps_one_trial_when_two_trial_holds_race_past_the_check(monkeypatch):
    # Two requests that both read "no trial yet" before either wrote: the partial unique index
    # uq_bookings_one_trial refuses the second with the same clear message.
    tutor = await bookable_tutor()
    stu = await student()
    await hold(stu, tutor, duration=30, trial=True)

    async def no_trial_yet(*args, **kwargs) -> bool:
        return False

    monkeypatch.setattr(svc, "_had_trial", no_trial_yet)
    with pytest.raises(ValidationFailed, match="already had a trial"):
        await hold(stu, tutor, start=START + timedelta(hours=2), duration=30, trial=True)
    async with session_factory()() as session:
        trials = await session.scalar(
            select(func.count()).where(Booking.student_id == stu.id, Booking.kind == BookingKind.trial)
        )
    assert trials == 1
    # a regular lesson is still fine
    assert (await hold(stu, tutor, start=START + timedelta(hours=4))).kind == BookingKind.lesson


async def test_trial_must_have_the_trial_length():
    tutor = await bookable_tutor()
    with pytest.raises(ValidationFailed, match="lasts 30 minutes"):
        await hold(await student(), tutor, duration=60, trial=True)


# ---- series --------------------------------------------------------------------------------


async def test_weekly_series_holds_every_occurrence_with_one_series_id():
    tutor = await bookable_tutor()
    stu = await student()
    rows = await call(
        svc.booking_hold_series, student=stu, tutor_user_id=tutor.id, first_start=START, duration=60, weeks=4, now=NOW
    )
    assert [b.starts_at for b in rows] == [START + timedelta(weeks=k) for k in range(4)]
    assert len({b.series_id for b in rows}) == 1 and rows[0].series_id is not None


async def test_series_keeps_the_tutors_wall_clock_time_across_daylight_saving():
    starts = svc.series_starts(datetime(2026, 10, 20, 16, tzinfo=UTC), 2, "Europe/Berlin")  # 18:00 CEST
    assert starts == [datetime(2026, 10, 20, 16, tzinfo=UTC), datetime(2026, 10, 27, 17, tzinfo=UTC)]  # 18:00 CET


async def test_series_is_all_or_nothing_and_names_the_colliding_dates():
    tutor = await bookable_tutor()
    taken = START + timedelta(weeks=2)
    await hold(await student("o@example.com"), tutor, start=taken)
    stu = await student()
    async with transaction() as session:
        checks = await svc.booking_series_check(
            session, student=stu, tutor_user_id=tutor.id, first_start=START, duration=60, weeks=3, now=NOW
        )
    assert [c.ok for c in checks] == [True, True, False] and checks[2].taken
    with pytest.raises(svc.SlotTaken) as err:
        await call(
            svc.booking_hold_series,
            student=stu,
            tutor_user_id=tutor.id,
            first_start=START,
            duration=60,
            weeks=3,
            now=NOW,
        )
    assert "1 lesson of this series cannot be booked" in err.value.message
    assert list(err.value.errors) == [taken.isoformat()]
    async with session_factory()() as session:
        mine = (await session.execute(select(Booking).where(Booking.student_id == stu.id))).scalars().all()
    assert mine == []


@pytest.mark.parametrize("weeks", [1, 13, "x"])
async def test_series_length_is_two_to_twelve_weeks(weeks):
    tutor = await bookable_tutor()
    with pytest.raises(ValidationFailed, match="between 2 and 12"):
        await call(
            svc.booking_hold_series,
            student=await student(),
            tutor_user_id=tutor.id,
            first_start=START,
            duration=60,
            weeks=weeks,
            now=NOW,
        )


# ---- payment, requests -------------------------------------------------------------------------


async def test_payment_confirms_an_instant_booking_once_and_mails_both_sides():
    tutor = await bookable_tutor()
    stu = await student()
    b = await hold(stu, tutor)
    paid = await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW + timedelta(minutes=5))
    assert paid.status == BookingStatus.confirmed
    assert paid.confirmed_at == NOW + timedelta(minutes=5) and paid.hold_expires_at is None
    assert paid.sequence == 1
    again = await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW + timedelta(minutes=6))
    assert again.status == BookingStatus.confirmed and again.sequence == 1
    to = sorted(m.to_address for m in await mails())
    assert to == sorted([tutor.email, stu.email])


async def test_request_mode_waits_for_the_tutor_for_24_hours():
    tutor = await bookable_tutor(booking_mode=BookingMode.request)
    stu = await student()
    b = await hold(stu, tutor)
    req = await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW)
    assert req.status == BookingStatus.requested
    assert req.request_expires_at == NOW + timedelta(hours=24)
    assert [m.to_address for m in await mails()] == [tutor.email]
    ok = await call(svc.booking_accept, tutor=tutor, booking_id=b.id, now=NOW + timedelta(hours=1))
    assert ok.status == BookingStatus.confirmed
    assert (await call(svc.booking_accept, tutor=tutor, booking_id=b.id)).status == BookingStatus.confirmed


async def test_decline_refunds_everything_and_is_idempotent():
    tutor = await bookable_tutor(booking_mode=BookingMode.request)
    b = await hold(await student(), tutor)
    await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW)
    out = await call(svc.booking_decline, tutor=tutor, booking_id=b.id, now=NOW)
    assert (out.status, out.refund_amount) == (BookingStatus.declined, PRICE_60)
    assert (await call(svc.booking_decline, tutor=tutor, booking_id=b.id)).status == BookingStatus.declined
    with pytest.raises(Conflict, match="not waiting for your answer"):
        await call(svc.booking_accept, tutor=tutor, booking_id=b.id, now=NOW)


async def test_late_accept_is_refused_and_the_request_expires_with_a_full_refund():
    tutor = await bookable_tutor(booking_mode=BookingMode.request)
    b = await hold(await student(), tutor)
    await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW)
    late = NOW + timedelta(hours=25)
    with pytest.raises(Conflict, match="expired"):
        await call(svc.booking_accept, tutor=tutor, booking_id=b.id, now=late)
    assert await call(svc.booking_expire_lapsed, now=late) == (0, 1)
    out = await get(b.id)
    assert (out.status, out.refund_amount) == (BookingStatus.expired, PRICE_60)
    assert await call(svc.booking_expire_lapsed, now=late) == (0, 0)


async def test_only_the_tutor_of_the_booking_may_answer():
    tutor = await bookable_tutor(booking_mode=BookingMode.request)
    other = await bookable_tutor(email="t2@example.com", name="Tom Tutor")
    b = await hold(await student(), tutor)
    await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW)
    with pytest.raises(NotFound):
        await call(svc.booking_accept, tutor=other, booking_id=b.id, now=NOW)


async def test_a_lapsed_hold_is_revived_by_payment_when_its_slot_is_still_free():
    tutor = await bookable_tutor()
    b = await hold(await student(), tutor)
    late = NOW + timedelta(minutes=30)
    await call(svc.booking_expire_lapsed, now=late)
    assert (await get(b.id)).status == BookingStatus.expired
    out = await call(svc.booking_confirm_payment, booking_id=b.id, now=late)
    assert out.status == BookingStatus.confirmed


async def test_payment_for_a_lapsed_hold_whose_slot_was_taken_raises_hold_lapsed():
    tutor = await bookable_tutor()
    b = await hold(await student(), tutor)
    late = NOW + timedelta(minutes=30)
    await hold(await student("o@example.com"), tutor, now=late)
    with pytest.raises(svc.HoldLapsed) as err:
        await call(svc.booking_confirm_payment, booking_id=b.id, now=late)
    assert err.value.status_code == 409
    assert "refunded" in err.value.message
    assert (await get(b.id)).status == BookingStatus.expired


async def test_unknown_booking_is_not_found():
    import uuid

    with pytest.raises(NotFound):
        await call(svc.booking_confirm_payment, booking_id=uuid.uuid4())


# ---- listeners -------------------------------------------------------------------------------


async def test_listeners_see_every_change_inside_the_transaction():
    seen = []

    async def listener(session, booking, change):
        seen.append((change, booking.status))

    svc.on_booking_change(listener)
    try:
        tutor = await bookable_tutor()
        stu = await student()
        b = await confirmed(stu, tutor)
        await call(svc.booking_cancel, actor=stu, booking_id=b.id, now=NOW + timedelta(minutes=2))
    finally:
        svc.remove_booking_listener(listener)
    assert seen == [
        (svc.BookingChange.held, BookingStatus.held),
        (svc.BookingChange.confirmed, BookingStatus.confirmed),
        (svc.BookingChange.cancelled, BookingStatus.cancelled),
    ]


# ---- reschedule ------------------------------------------------------------------------------


async def test_reschedule_moves_the_lesson_atomically_and_raises_sequence():
    tutor = await bookable_tutor(buffer_after=15)
    stu = await student()
    b = await confirmed(stu, tutor)
    new = START + timedelta(hours=3)
    out = await call(svc.booking_reschedule, actor=stu, booking_id=b.id, new_start=new, now=NOW)
    assert (out.starts_at, out.ends_at) == (new, new + timedelta(hours=1))
    assert (out.blocked_from, out.blocked_until) == (new, new + timedelta(minutes=75))
    assert (out.reschedule_count, out.sequence) == (1, 2)
    # the old time is free again
    assert (await hold(await student("o@example.com"), tutor)).status == BookingStatus.held
    assert any("moved" in m.subject for m in await mails())


async def test_reschedule_into_its_own_overlapping_range_is_allowed():
    tutor = await bookable_tutor()
    stu = await student()
    b = await confirmed(stu, tutor)
    out = await call(
        svc.booking_reschedule, actor=tutor, booking_id=b.id, new_start=START + timedelta(minutes=30), now=NOW
    )
    assert out.starts_at == START + timedelta(minutes=30)


async def test_reschedule_to_a_taken_slot_is_a_conflict():
    tutor = await bookable_tutor()
    stu = await student()
    b = await confirmed(stu, tutor)
    await hold(await student("o@example.com"), tutor, start=START + timedelta(hours=2))
    with pytest.raises(svc.SlotTaken):
        await call(svc.booking_reschedule, actor=stu, booking_id=b.id, new_start=START + timedelta(hours=2), now=NOW)


async def test_at_most_two_reschedules():
    tutor = await bookable_tutor()
    stu = await student()
    b = await confirmed(stu, tutor)
    for k in range(MAX_RESCHEDULES):
        await call(
            svc.booking_reschedule, actor=stu, booking_id=b.id, new_start=START + timedelta(hours=k + 1), now=NOW
        )
    with pytest.raises(ValidationFailed, match="at most 2 times"):
        await call(svc.booking_reschedule, actor=tutor, booking_id=b.id, new_start=START + timedelta(hours=5), now=NOW)


async def test_students_cannot_move_after_the_free_cancellation_deadline_but_tutors_can():
    tutor = await bookable_tutor(free_cancel_hours=24)
    stu = await student()
    b = await confirmed(stu, tutor)
    late = START - timedelta(hours=23)
    with pytest.raises(ValidationFailed, match="Less than 24 hours"):
        await call(svc.booking_reschedule, actor=stu, booking_id=b.id, new_start=START + timedelta(hours=2), now=late)
    out = await call(
        svc.booking_reschedule, actor=tutor, booking_id=b.id, new_start=START + timedelta(hours=2), now=late
    )
    assert out.reschedule_count == 1


async def test_only_confirmed_lessons_of_participants_can_be_moved():
    tutor = await bookable_tutor()
    stu = await student()
    b = await hold(stu, tutor)
    with pytest.raises(Conflict, match="Only a confirmed lesson"):
        await call(svc.booking_reschedule, actor=stu, booking_id=b.id, new_start=START + timedelta(hours=2), now=NOW)
    stranger = await student("x@example.com")
    with pytest.raises(NotFound):
        await call(svc.booking_reschedule, actor=stranger, booking_id=b.id, new_start=START, now=NOW)


# ---- cancel ----------------------------------------------------------------------------------


async def test_student_cancelling_early_gets_everything_back():
    tutor = await bookable_tutor(free_cancel_hours=24, late_refund_percent=50)
    stu = await student()
    b = await confirmed(stu, tutor)
    out = await call(svc.booking_cancel, actor=stu, booking_id=b.id, reason="ill", now=START - timedelta(hours=24))
    assert (out.status, out.cancelled_by, out.refund_amount, out.cancel_reason) == (
        BookingStatus.cancelled,
        "student",
        PRICE_60,
        "ill",
    )
    assert out.sequence == 2
    again = await call(svc.booking_cancel, actor=stu, booking_id=b.id)
    assert again.refund_amount == PRICE_60 and again.sequence == 2


async def test_student_cancelling_late_gets_the_late_share():
    tutor = await bookable_tutor(free_cancel_hours=24, late_refund_percent=50)
    stu = await student()
    b = await confirmed(stu, tutor)
    out = await call(svc.booking_cancel, actor=stu, booking_id=b.id, now=START - timedelta(hours=23, minutes=59))
    assert out.refund_amount == PRICE_60 // 2


async def test_tutor_cancelling_always_refunds_in_full_and_counts_against_reliability():
    tutor = await bookable_tutor(late_refund_percent=0)
    stu = await student()
    done = await confirmed(stu, tutor, start=START + timedelta(hours=4))
    await call(svc.booking_complete, booking_id=done.id, at=START + timedelta(hours=5))
    b = await confirmed(stu, tutor)
    out = await call(svc.booking_cancel, actor=tutor, booking_id=b.id, now=START - timedelta(hours=1))
    assert (out.cancelled_by, out.refund_amount) == ("tutor", PRICE_60)
    async with session_factory()() as session:
        rel = await svc.tutor_reliability(session, tutor_user_id=tutor.id)
    assert rel == svc.Reliability(lessons=2, completed=1, cancelled_by_tutor=1, no_shows=0, percent=50)


async def test_cancelling_an_unpaid_hold_refunds_nothing_and_frees_the_slot():
    tutor = await bookable_tutor()
    stu = await student()
    b = await hold(stu, tutor)
    out = await call(svc.booking_cancel, actor=stu, booking_id=b.id, now=NOW)
    assert (out.status, out.refund_amount) == (BookingStatus.cancelled, 0)
    assert (await hold(await student("o@example.com"), tutor)).status == BookingStatus.held
    with pytest.raises(svc.HoldLapsed):
        await call(svc.booking_confirm_payment, booking_id=b.id, now=NOW)


async def test_a_started_lesson_cannot_be_cancelled():
    tutor = await bookable_tutor()
    stu = await student()
    b = await confirmed(stu, tutor)
    with pytest.raises(Conflict, match="already started"):
        await call(svc.booking_cancel, actor=stu, booking_id=b.id, now=START + timedelta(minutes=1))


# ---- complete, no-show -------------------------------------------------------------------------


async def test_complete_is_idempotent_and_not_before_the_start():
    tutor = await bookable_tutor()
    b = await confirmed(await student(), tutor)
    with pytest.raises(Conflict, match="before it starts"):
        await call(svc.booking_complete, booking_id=b.id, at=START - timedelta(minutes=1))
    out = await call(svc.booking_complete, booking_id=b.id, at=START + timedelta(hours=1))
    assert out.status == BookingStatus.completed
    assert (await call(svc.booking_complete, booking_id=b.id)).completed_at == START + timedelta(hours=1)


async def test_complete_needs_a_confirmed_lesson():
    tutor = await bookable_tutor()
    b = await hold(await student(), tutor)
    with pytest.raises(Conflict, match="Only a confirmed lesson"):
        await call(svc.booking_complete, booking_id=b.id, at=START + timedelta(hours=1))


async def test_student_no_show_pays_the_tutor():
    tutor = await bookable_tutor()
    b = await confirmed(await student(), tutor)
    out = await call(svc.booking_no_show, booking_id=b.id, absent="student", at=START + timedelta(minutes=20))
    assert out.status == BookingStatus.no_show and out.refund_amount is None
    assert (await call(svc.booking_no_show, booking_id=b.id, absent="student")).status == BookingStatus.no_show


async def test_tutor_no_show_refunds_the_student_and_counts_as_a_no_show():
    tutor = await bookable_tutor()
    b = await confirmed(await student(), tutor)
    out = await call(svc.booking_no_show, booking_id=b.id, absent="tutor", at=START + timedelta(minutes=20))
    assert (out.status, out.cancelled_by, out.refund_amount) == (BookingStatus.cancelled, "tutor", PRICE_60)
    again = await call(svc.booking_no_show, booking_id=b.id, absent="tutor")
    assert again.sequence == out.sequence
    async with session_factory()() as session:
        rel = await svc.tutor_reliability(session, tutor_user_id=tutor.id)
    assert (rel.lessons, rel.cancelled_by_tutor, rel.no_shows, rel.percent) == (1, 0, 1, 0)
    with pytest.raises(ValidationFailed):
        await call(svc.booking_no_show, booking_id=b.id, absent="nobody")


async def test_reliability_without_lessons_has_no_percentage():
    tutor = await bookable_tutor()
    async with session_factory()() as session:
        rel = await svc.tutor_reliability(session, tutor_user_id=tutor.id)
    assert rel.percent is None and rel.lessons == 0


# ---- expiry job ------------------------------------------------------------------------------


async def test_expiry_actor_expires_lapsed_holds_idempotently(drain_jobs):
    from marketplace import periodic
    from scheduling import jobs

    assert periodic.registered()[jobs.bookings_expire.actor_name].seconds == 60
    tutor = await bookable_tutor()
    real_now = datetime.now(UTC)
    b = await hold(await student(), tutor, start=next_hour(days=3), now=real_now - timedelta(minutes=20))
    for _ in range(2):
        jobs.bookings_expire.send()
        drain_jobs()
    out = await get(b.id)
    assert out.status == BookingStatus.expired and out.sequence == 1
