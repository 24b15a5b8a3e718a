"""Lesson packages: the tutor's offer, buying through the provider's events only (replayed and out
of order), spending credits on held lessons (one wins the race for the last credit), cancellation
(credit back, or the policy's share in money), expiry with one reminder, the pro-rata refund, and
the ledger balanced after each step."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction, utcnow
from marketplace.errors import CodedError, Conflict, NotFound, ValidationFailed
from marketplace.i18n import format_date, ngettext, use_locale
from marketplace.tutors.models import TutorProfile
from payouts import ledger
from payouts.models import LessonPackage, PackageStatus, Payment, TransferStatus, WebhookEvent
from payouts.packages import (
    add_months,
    credits_for_booking,
    package_checkout_start,
    package_credit_spend,
    package_offers_set,
    package_refund_request,
    packages_expire,
    packages_remind,
)
from payouts.services import event_process, event_receive, fee_for, offline_package_pay, transfer_for_booking
from scheduling import bookings
from scheduling.models import BookingStatus
from tests.helpers import outbox
from tests.payouts.support import balance, event, held_booking, ledger_sums, load_booking, load_payment, paid_tutor
from tests.scheduling.bookings_support import bookable_tutor, student

PRICE_60 = 4500  # tests.profiles.support.approved_tutor's 60-minute price (EUR)


async def offer(tutor: User, offers: dict[int, int]) -> None:
    async with transaction() as session:
        await package_offers_set(session, tutor=tutor, offers={n: (True, d) for n, d in offers.items()})


async def fresh(user: User) -> User:
    async with session_factory()() as session:
        return await session.get(User, user.id)


async def load_package(package_id: uuid.UUID) -> LessonPackage:
    async with session_factory()() as session:
        return await session.get(LessonPackage, package_id)


async def buy(tutor: User, learner: User, lessons: int, drain_jobs) -> LessonPackage:
    url = await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=lessons)
    package_id = await offline_package_pay(session_id=url.rsplit("/", 1)[1], student=await fresh(learner))
    drain_jobs()
    return await load_package(package_id)


async def setup_package(drain_jobs, *, lessons: int = 5, discount: int = 10, **calendar):
    tutor = await paid_tutor(**calendar)
    learner = await student()
    await offer(tutor, {lessons: discount})
    package = await buy(tutor, learner, lessons, drain_jobs)
    return tutor, learner, package


async def assert_reconciled() -> None:
    """The ledger against the offline provider's objects: no difference."""
    from payouts.providers import get_provider
    from payouts.reconcile import reconcile

    async with session_factory()() as session:
        report = await reconcile(session, get_provider())
    assert report.ok, [str(d) for d in report.differences]


async def spend(learner: User, booking_id: uuid.UUID) -> LessonPackage:
    return await package_credit_spend(student=await fresh(learner), booking_id=booking_id)


# ---- pure arithmetic ------------------------------------------------------------------------------


def test_package_price_rounds_down_and_credits_add_up_to_what_was_paid():
    assert ledger.package_price(unit_price=4500, lessons=5, discount_percent=10) == 20250
    assert ledger.package_price(unit_price=3333, lessons=5, discount_percent=15) == 14165  # 14165.25
    assert ledger.package_price(unit_price=3333, lessons=5, discount_percent=10) == 14998  # 14998.5
    remaining, left, values = 14998, 5, []
    while left:
        value = ledger.credit_value(remaining_value=remaining, credits_left=left)
        values.append(value)
        remaining, left = remaining - value, left - 1
    assert sum(values) == 14998 and max(values) - min(values) <= 1
    with pytest.raises(CodedError):
        ledger.package_price(unit_price=4500, lessons=5, discount_percent=101)


def test_credits_expire_six_calendar_months_later():
    from datetime import UTC, datetime

    assert add_months(datetime(2026, 8, 31, 9, tzinfo=UTC), 6) == datetime(2027, 2, 28, 9, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 25, tzinfo=UTC), 6) == datetime(2027, 5, 25, tzinfo=UTC)


# ---- the offer ----------------------------------------------------------------------------------------


async def test_discounts_out_of_range_are_refused_and_nothing_is_saved():
    tutor = await paid_tutor()
    for bad in (-1, 51, 100):
        with pytest.raises(ValidationFailed):
            async with transaction() as session:
                await package_offers_set(session, tutor=tutor, offers={5: (True, bad)})
    async with session_factory()() as session:
        from payouts.packages import package_quotes

        assert await package_quotes(session, tutor_id=tutor.id) == []


async def test_a_tutor_without_a_60_minute_price_cannot_offer_packages():
    tutor = await paid_tutor()
    async with transaction() as session:
        profile = await session.scalar(select(TutorProfile).where(TutorProfile.user_id == tutor.id))
        profile.live = {**profile.live, "durations": [{"minutes": 45, "price": 3500}]}
    with pytest.raises(ValidationFailed):
        async with transaction() as session:
            await package_offers_set(session, tutor=tutor, offers={5: (True, 10)})


# ---- buying ----------------------------------------------------------------------------------------------


async def test_buying_activates_the_package_only_from_the_providers_event(drain_jobs):
    tutor = await paid_tutor()
    learner = await student()
    await offer(tutor, {5: 10, 10: 20})
    url = await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=5)
    # A double click gets the same checkout.
    assert await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=5) == url
    async with session_factory()() as session:
        (pending,) = (await session.execute(select(LessonPackage))).scalars().all()
    assert pending.status == PackageStatus.open and pending.credits_left == 0 and pending.amount == 20250
    assert await ledger_sums() == {}
    package_id = await offline_package_pay(session_id=url.rsplit("/", 1)[1], student=await fresh(learner))
    drain_jobs()
    package = await load_package(package_id)
    assert package.status == PackageStatus.active
    assert (package.credits_left, package.remaining_value, package.paid_amount) == (5, 20250, 20250)
    assert package.expires_at == add_months(package.paid_at, 6)
    assert package.charge_id and package.payment_intent_id
    async with session_factory()() as session:
        from payouts.reports import finance_summary

        rows, _pending, _unapplied = await finance_summary(session)
    assert sum(r.volume for r in rows) == 20250  # the admin's finance page counts package sales
    assert await balance(ledger.CASH) == 20250
    assert await balance(ledger.package_credit(package.id)) == -20250
    assert await ledger_sums() == {"EUR": 0}


async def test_package_events_replayed_and_out_of_order_apply_once(drain_jobs):
    tutor = await paid_tutor()
    learner = await student()
    await offer(tutor, {10: 20})
    url = await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=10)
    package = (await load_package_by_student(learner.id))[0]
    amount = PRICE_60 * 10 * 80 // 100
    assert package.amount == amount
    session_obj = {
        "id": package.checkout_session_id,
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": amount,
        "currency": "eur",
        "client_reference_id": f"package_{package.id}",
        "metadata": {"package_id": str(package.id)},
        "payment_intent": "pi_pkg_1",
    }
    charge = {"id": "ch_pkg_1", "object": "charge", "payment_intent": "pi_pkg_1", "amount_refunded": 0}
    refunded = event("charge.refunded", charge)
    completed = event("checkout.session.completed", session_obj)
    expired = event("checkout.session.expired", {**session_obj, "status": "expired", "payment_status": "unpaid"})
    # The charge event first: deferred until the payment is known.
    assert await event_receive(endpoint="platform", event=refunded)
    drain_jobs()
    assert await event_status(refunded["id"]) == "deferred"
    for e in (completed, completed, expired, completed):  # replays and an expiry arriving late
        await event_receive(endpoint="platform", event=e)
    drain_jobs()
    await event_process(refunded["id"])
    assert await event_status(refunded["id"]) == "processed"
    package = await load_package(package.id)
    assert package.status == PackageStatus.active and package.credits_left == 10
    assert await balance(ledger.package_credit(package.id)) == -amount
    assert await balance(ledger.CASH) == amount
    assert await ledger_sums() == {"EUR": 0}
    assert url  # the checkout URL was handed out before any event


async def test_a_package_payment_that_does_not_match_is_refunded_not_activated(drain_jobs):
    tutor = await paid_tutor()
    learner = await student()
    await offer(tutor, {5: 10})
    await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=5)
    package = (await load_package_by_student(learner.id))[0]
    from payouts.providers import get_provider

    provider = get_provider()
    paid = await provider.pay_checkout(package.checkout_session_id)
    wrong = {**paid, "amount_total": 100}
    await event_receive(endpoint="offline", event=event("checkout.session.completed", wrong))
    drain_jobs()
    package = await load_package(package.id)
    assert package.status == PackageStatus.unapplied and package.credits_left == 0
    assert package.refunded_amount == 100
    assert await balance(ledger.UNAPPLIED) == 0
    assert await ledger_sums() == {"EUR": 0}


async def test_buying_is_refused_for_own_packages_missing_offers_and_tutors_without_payouts(drain_jobs):
    tutor = await paid_tutor()
    learner = await student()
    with pytest.raises(Conflict):  # no offer
        await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=5)
    await offer(tutor, {5: 10})
    with pytest.raises(ValidationFailed):
        await package_checkout_start(student=await fresh(tutor), tutor_id=tutor.id, lessons=5)
    with pytest.raises(ValidationFailed):
        await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=7)
    with pytest.raises(NotFound):
        await package_checkout_start(student=await fresh(learner), tutor_id=uuid.uuid4(), lessons=5)
    closed = await bookable_tutor(email="nopay@example.com", payouts=False)
    await offer(closed, {5: 10})
    with pytest.raises(Conflict):
        await package_checkout_start(student=await fresh(learner), tutor_id=closed.id, lessons=5)
    async with session_factory()() as session:
        assert (await session.execute(select(LessonPackage))).scalars().all() == []


# ---- spending ----------------------------------------------------------------------------------------------


async def test_a_credit_pays_a_held_lesson_and_the_tutor_is_paid_after_it(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs)
    booking = await held_booking(tutor, learner)
    async with session_factory()() as session:
        assert await credits_for_booking(session, booking=await load_booking(booking.id)) == 5
    await spend(learner, booking.id)
    drain_jobs()
    booking = await load_booking(booking.id)
    assert booking.status == BookingStatus.confirmed and booking.paid_at is not None
    payment = await load_payment(booking.id)
    value, fee = 20250 // 5, fee_for(20250 // 5)
    assert (payment.provider, payment.paid_amount, payment.fee_amount, payment.package_id) == (
        "package",
        value,
        fee,
        package.id,
    )
    package = await load_package(package.id)
    assert (package.credits_left, package.remaining_value) == (4, 20250 - value)
    assert await balance(ledger.package_credit(package.id)) == -(20250 - value)
    assert await balance(ledger.tutor_payable(tutor.id)) == -(value - fee)
    assert await ledger_sums() == {"EUR": 0}
    # Completion, the review window, then one transfer of the tutor's share.
    async with transaction() as session:
        await bookings.booking_complete(session, booking_id=booking.id, at=booking.ends_at)
    drain_jobs()
    await transfer_for_booking(booking_id=booking.id, now=booking.ends_at + timedelta(hours=49))
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.paid and payment.transfer_amount == value - fee
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await balance(ledger.CASH) == 20250 - (value - fee)
    assert await ledger_sums() == {"EUR": 0}


async def test_credits_are_refused_for_other_tutors_other_lengths_paid_and_expired(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs)
    other = await paid_tutor(email="other@example.com")
    foreign = await held_booking(other, learner)
    with pytest.raises(Conflict, match="no package credits"):
        await spend(learner, foreign.id)
    short = await held_booking(tutor, learner, days=3, duration=45)
    with pytest.raises(ValidationFailed, match="60-minute"):
        await spend(learner, short.id)
    booking = await held_booking(tutor, learner, days=4)
    stranger = await student(email="stranger@example.com")
    with pytest.raises(NotFound):
        await spend(stranger, booking.id)
    await spend(learner, booking.id)
    with pytest.raises(Conflict):  # paid already: a second click spends nothing
        await spend(learner, booking.id)
    async with transaction() as session:
        row = await session.get(LessonPackage, package.id)
        row.expires_at = utcnow() - timedelta(minutes=1)
    later = await held_booking(tutor, learner, days=5)
    with pytest.raises(Conflict, match="no package credits"):
        await spend(learner, later.id)
    assert (await load_package(package.id)).credits_left == 4
    assert (await load_booking(later.id)).status == BookingStatus.held
    assert await load_payment(later.id) is None
    assert await ledger_sums() == {"EUR": 0}


async def test_two_holds_racing_for_the_last_credit_one_wins(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs)
    async with transaction() as session:
        row = await session.get(LessonPackage, package.id)
        row.credits_left, row.remaining_value = 1, 4050  # as if four credits were used
    first = await held_booking(tutor, learner, days=2)
    second = await held_booking(tutor, learner, days=3)
    results = await asyncio.gather(spend(learner, first.id), spend(learner, second.id), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "LessonPackage"]
    statuses = sorted([(await load_booking(first.id)).status, (await load_booking(second.id)).status])
    assert statuses == sorted([BookingStatus.confirmed, BookingStatus.held])
    package = await load_package(package.id)
    assert (package.credits_left, package.remaining_value) == (0, 0)
    async with session_factory()() as session:
        paid = (await session.execute(select(Payment).where(Payment.package_id == package.id))).scalars().all()
    assert len(paid) == 1


# ---- cancelling ------------------------------------------------------------------------------------------------


async def test_a_cancellation_refunded_in_full_gives_the_credit_back(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs)
    booking = await held_booking(tutor, learner, days=5)
    await spend(learner, booking.id)
    drain_jobs()
    async with transaction() as session:
        await bookings.booking_cancel(session, actor=await session.get(User, learner.id), booking_id=booking.id)
    drain_jobs()
    package = await load_package(package.id)
    assert (package.credits_left, package.remaining_value) == (5, 20250)
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == payment.paid_amount and payment.transfer_status == TransferStatus.cancelled
    assert await balance(ledger.package_credit(package.id)) == -20250
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await balance(ledger.CASH) == 20250  # no money moved
    assert await ledger_sums() == {"EUR": 0}
    await assert_reconciled()


async def test_a_declined_request_paid_with_a_credit_gives_the_credit_back(drain_jobs):
    from scheduling.models import BookingMode

    tutor, learner, package = await setup_package(drain_jobs, booking_mode=BookingMode.request)
    booking = await held_booking(tutor, learner)
    await spend(learner, booking.id)
    assert (await load_booking(booking.id)).status == BookingStatus.requested
    assert (await load_package(package.id)).credits_left == 4
    async with transaction() as session:
        await bookings.booking_decline(session, tutor=await session.get(User, tutor.id), booking_id=booking.id)
    drain_jobs()
    package = await load_package(package.id)
    assert (package.credits_left, package.remaining_value) == (5, 20250)
    assert await balance(ledger.package_credit(package.id)) == -20250
    assert await ledger_sums() == {"EUR": 0}


async def test_a_late_cancellation_refunds_the_policys_share_of_the_credit_in_money(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs, late_refund_percent=50)
    soon = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=3)
    booking = await held_booking(tutor, learner, starts_at=soon)
    await spend(learner, booking.id)
    drain_jobs()
    async with transaction() as session:
        await bookings.booking_cancel(session, actor=await session.get(User, learner.id), booking_id=booking.id)
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 2025  # half of the credit's 40.50
    package = await load_package(package.id)
    assert package.credits_left == 4  # the credit stays spent
    from payouts.providers import get_provider

    charge = await get_provider().retrieve_charge(package.charge_id)
    assert charge["amount_refunded"] == 2025
    assert await balance(ledger.CASH) == 20250 - 2025
    assert await ledger_sums() == {"EUR": 0}
    await assert_reconciled()


# ---- expiry ----------------------------------------------------------------------------------------------------


async def test_one_reminder_before_expiry_then_the_credits_expire_as_breakage(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs)
    async with transaction() as session:
        user = await session.get(User, learner.id)
        user.locale = "de"
    booking = await held_booking(tutor, learner)
    await spend(learner, booking.id)
    now = utcnow()
    assert await packages_remind(now=now) == 0  # six months to go
    at = package.expires_at - timedelta(days=13)
    assert await packages_remind(now=at) == 1
    assert await packages_remind(now=at + timedelta(hours=1)) == 0
    with use_locale("de", learner.timezone):
        german_date = format_date(package.expires_at, "long")  # e.g. "25. Mai 2027"
        # The sentence as the student's language has it (translated or not, whatever the catalog says).
        expected = ngettext(
            "You have %(num)d unused lesson credit with %(name)s. It expires on %(date)s.",
            "You have %(num)d unused lesson credits with %(name)s. They expire on %(date)s.",
            4,
            name=tutor.display_name,
            date=german_date,
        )
    reminders = [m for m in await outbox(learner.email) if "/packages" in m.body_text]
    assert len(reminders) == 1
    assert expected in reminders[0].body_text and german_date in reminders[0].body_text
    assert await packages_expire(now=package.expires_at - timedelta(seconds=1)) == 0
    assert await packages_expire(now=package.expires_at) == 1
    assert await packages_expire(now=package.expires_at + timedelta(days=1)) == 0
    package = await load_package(package.id)
    assert (package.status, package.credits_left, package.remaining_value) == (PackageStatus.lapsed, 0, 0)
    assert await balance(ledger.package_credit(package.id)) == 0
    assert await balance(ledger.BREAKAGE) == -(20250 - 20250 // 5)
    assert await ledger_sums() == {"EUR": 0}
    with pytest.raises(Conflict, match="expired"):
        await package_refund_request(student=await fresh(learner), package_id=package.id)


# ---- pro-rata refund -----------------------------------------------------------------------------------------


async def test_unused_credits_are_refunded_pro_rata_once(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs)
    for days in (2, 3):
        booking = await held_booking(tutor, learner, days=days)
        await spend(learner, booking.id)
    drain_jobs()
    closed = await package_refund_request(student=await fresh(learner), package_id=package.id)
    assert closed.status == PackageStatus.refunding and closed.refund_requested == 20250 * 3 // 5
    later = await held_booking(tutor, learner, days=4)
    with pytest.raises(Conflict):  # a refunding package pays nothing any more
        await spend(learner, later.id)
    drain_jobs()
    package = await load_package(package.id)
    assert (package.status, package.refunded_amount, package.credits_left) == (PackageStatus.refunded, 12150, 0)
    assert await balance(ledger.package_credit(package.id)) == 0
    assert await balance(ledger.CASH) == 20250 - 12150
    assert await ledger_sums() == {"EUR": 0}
    await assert_reconciled()
    with pytest.raises(Conflict, match="refunded already"):
        await package_refund_request(student=await fresh(learner), package_id=package.id)
    stranger = await student(email="stranger@example.com")
    with pytest.raises(NotFound):
        await package_refund_request(student=stranger, package_id=package.id)


async def test_the_pro_rata_refund_rounds_in_the_students_favour(drain_jobs):
    tutor = await paid_tutor()
    async with transaction() as session:
        profile = await session.scalar(select(TutorProfile).where(TutorProfile.user_id == tutor.id))
        profile.live = {**profile.live, "durations": [{"minutes": 60, "price": 3333}]}
    learner = await student()
    await offer(tutor, {5: 10})
    package = await buy(tutor, learner, 5, drain_jobs)
    assert package.amount == 14998
    booking = await held_booking(tutor, learner)
    await spend(learner, booking.id)
    assert (await load_payment(booking.id)).paid_amount == 2999  # 14998 / 5 rounded down
    await package_refund_request(student=await fresh(learner), package_id=package.id)
    drain_jobs()
    package = await load_package(package.id)
    # 14998 x 4 / 5 = 11998.4: the student gets 11999, exactly what the package still held.
    assert package.refunded_amount == 11999 == 14998 - 2999
    assert await balance(ledger.package_credit(package.id)) == 0
    assert await ledger_sums() == {"EUR": 0}


async def test_an_exhausted_package_has_nothing_to_refund(drain_jobs):
    tutor, learner, package = await setup_package(drain_jobs)
    async with transaction() as session:
        row = await session.get(LessonPackage, package.id)
        row.credits_left, row.remaining_value = 1, 4050
    booking = await held_booking(tutor, learner)
    await spend(learner, booking.id)
    with pytest.raises(Conflict, match="no unused credits"):
        await package_refund_request(student=await fresh(learner), package_id=package.id)


# ---- helpers ------------------------------------------------------------------------------------------------


async def load_package_by_student(student_id: uuid.UUID) -> list[LessonPackage]:
    async with session_factory()() as session:
        return list(
            (await session.execute(select(LessonPackage).where(LessonPackage.student_id == student_id))).scalars()
        )


async def event_status(event_id: str) -> str:
    async with session_factory()() as session:
        return await session.scalar(select(WebhookEvent.status).where(WebhookEvent.event_id == event_id))
