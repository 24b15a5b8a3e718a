"""A provider dispute (chargeback) on a lesson package's charge: the package and the transfers of
the lessons paid from it that are not transferred yet are frozen; a won dispute releases them; a
lost one closes the package with a balanced ledger. Replays and events out of order (closed before
created) end in the same state."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction, utcnow
from marketplace.errors import Conflict
from payouts import ledger
from payouts.models import LedgerTransaction, LessonPackage, PackageStatus, Payment, TransferStatus
from payouts.packages import credits_for_booking, package_refund_request, packages_expire
from payouts.services import event_receive, fee_for, transfer_for_booking
from scheduling import bookings
from scheduling.models import BookingStatus
from tests.helpers import log_in
from tests.payouts.support import balance, event, held_booking, ledger_sums, load_booking, load_payment, paid_tutor
from tests.payouts.test_packages import assert_reconciled, buy, fresh, load_package, offer, spend
from tests.scheduling.bookings_support import student

PACKAGE = 20250  # 5 x 45.00 at 10 % off
VALUE = PACKAGE // 5
FEE = fee_for(VALUE)


def dispute(package: LessonPackage, *, status: str = "needs_response", dispute_id: str = "dp_pkg_1") -> dict:
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": package.paid_amount - package.refunded_amount,
        "currency": package.currency.lower(),
        "charge": package.charge_id,
        "payment_intent": package.payment_intent_id,
        "reason": "fraudulent",
        "status": status,
    }


async def deliver(drain_jobs, kind: str, obj: dict) -> dict:
    payload = event(kind, obj)
    assert await event_receive(endpoint="platform", event=payload)
    drain_jobs()
    return payload


async def taught_and_transferred(tutor: User, learner: User, drain_jobs, *, days: int) -> uuid.UUID:
    """A lesson paid with a credit, completed, and (after the review window) transferred."""
    booking = await held_booking(tutor, learner, days=days)
    await spend(learner, booking.id)
    drain_jobs()
    booking = await load_booking(booking.id)
    async with transaction() as session:
        await bookings.booking_complete(session, booking_id=booking.id, at=booking.ends_at)
    drain_jobs()
    await transfer_for_booking(booking_id=booking.id, now=booking.ends_at + timedelta(hours=49))
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.paid
    return booking.id


async def booked(tutor: User, learner: User, drain_jobs, *, days: int) -> uuid.UUID:
    """A lesson paid with a credit, confirmed, not taught yet (nothing transferred)."""
    booking = await held_booking(tutor, learner, days=days)
    await spend(learner, booking.id)
    drain_jobs()
    return booking.id


async def setup(drain_jobs, learner: User | None = None, tutor: User | None = None):
    tutor = tutor or await paid_tutor()
    learner = learner or await student()
    await offer(tutor, {5: 10})
    package = await buy(tutor, learner, 5, drain_jobs)
    assert package.status == PackageStatus.active and package.charge_id and package.payment_intent_id
    return tutor, learner, package


async def ledger_count() -> int:
    async with session_factory()() as session:
        return await session.scalar(select(func.count()).select_from(LedgerTransaction))


async def snapshot(package_id: uuid.UUID) -> tuple:
    """What a package's dispute decides: the package's state and its lessons' transfer states."""
    async with session_factory()() as session:
        package = await session.get(LessonPackage, package_id)
        lessons = (
            await session.execute(select(Payment).where(Payment.package_id == package_id).order_by(Payment.created_at))
        ).scalars()
        return (
            package.status,
            package.credits_left,
            package.remaining_value,
            package.disputed,
            package.dispute[1] if package.dispute else None,
            tuple((p.transfer_status, p.refunded_amount, p.provider_dispute_id) for p in lessons),
        )


async def test_a_dispute_freezes_the_package_and_unpaid_transfers_and_a_win_releases_them(drain_jobs):
    tutor, learner, package = await setup(drain_jobs)
    taught = await taught_and_transferred(tutor, learner, drain_jobs, days=2)
    upcoming = await booked(tutor, learner, drain_jobs, days=3)
    await deliver(drain_jobs, "charge.dispute.created", dispute(package))

    package = await load_package(package.id)
    assert package.disputed and package.status == PackageStatus.active and package.credits_left == 3
    assert (await load_payment(upcoming)).transfer_status == TransferStatus.frozen
    assert (await load_payment(upcoming)).provider_dispute_id == "dp_pkg_1"
    assert (await load_payment(taught)).transfer_status == TransferStatus.paid  # transferred already
    # No credit can be spent, refunded or expire while the dispute is open; the student is told why.
    held = await held_booking(tutor, learner, days=4)
    async with session_factory()() as session:
        assert await credits_for_booking(session, booking=await load_booking(held.id)) == 0
    with pytest.raises(Conflict, match="payment dispute"):
        await spend(learner, held.id)
    assert (await load_booking(held.id)).status == BookingStatus.held
    with pytest.raises(Conflict, match="payment dispute"):
        await package_refund_request(student=await fresh(learner), package_id=package.id)
    assert await packages_expire(now=package.expires_at + timedelta(days=1)) == 0
    # The frozen lesson is taught: its transfer waits for the dispute.
    lesson = await load_booking(upcoming)
    async with transaction() as session:
        await bookings.booking_complete(session, booking_id=upcoming, at=lesson.ends_at)
    drain_jobs()
    assert await transfer_for_booking(booking_id=upcoming, now=lesson.ends_at + timedelta(hours=49)) is None
    assert (await load_payment(upcoming)).transfer_status == TransferStatus.frozen

    before = await ledger_count()
    await deliver(drain_jobs, "charge.dispute.closed", dispute(package, status="won"))
    assert await ledger_count() == before  # winning moves no money
    package = await load_package(package.id)
    assert not package.disputed and package.dispute == ("dp_pkg_1", "won")
    await transfer_for_booking(booking_id=upcoming, now=lesson.ends_at + timedelta(hours=49))
    payment = await load_payment(upcoming)
    assert payment.transfer_status == TransferStatus.paid and payment.transfer_amount == VALUE - FEE
    await spend(learner, held.id)  # usable again
    drain_jobs()
    assert (await load_package(package.id)).credits_left == 2
    assert await balance(ledger.tutor_payable(tutor.id)) == -(VALUE - FEE)  # the new lesson, not transferred
    assert await ledger_sums() == {"EUR": 0}
    await assert_reconciled()


async def test_a_lost_dispute_closes_the_package_and_the_ledger_balances(drain_jobs):
    tutor, learner, package = await setup(drain_jobs, tutor=await paid_tutor(late_refund_percent=50))
    taught = await taught_and_transferred(tutor, learner, drain_jobs, days=2)
    upcoming = await booked(tutor, learner, drain_jobs, days=3)
    returned = await booked(tutor, learner, drain_jobs, days=5)  # cancelled in time: the credit comes back
    soon = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=3)
    late = await held_booking(tutor, learner, starts_at=soon)  # cancelled late: half refunded in money
    await spend(learner, late.id)
    drain_jobs()
    for booking_id in (returned, late.id):
        async with transaction() as session:
            await bookings.booking_cancel(session, actor=await session.get(User, learner.id), booking_id=booking_id)
        drain_jobs()
    assert (await load_package(package.id)).credits_left == 2
    assert (await load_payment(late.id)).refunded_amount == VALUE // 2
    await deliver(drain_jobs, "charge.dispute.created", dispute(package))
    lost = dispute(package, status="lost")
    await deliver(drain_jobs, "charge.dispute.closed", lost)

    package = await load_package(package.id)
    assert (package.status, package.credits_left, package.remaining_value) == (PackageStatus.refunded, 0, 0)
    assert package.dispute == ("dp_pkg_1", "lost") and package.closed_at is not None
    assert not (await load_package(package.id)).disputed
    payment = await load_payment(upcoming)
    assert payment.transfer_status == TransferStatus.cancelled and payment.refunded_amount == VALUE
    assert (await load_payment(taught)).transfer_status == TransferStatus.paid
    assert (await load_payment(late.id)).refunded_amount == VALUE  # the rest went back with the dispute
    # The provider took back what the charge still held (all but the late cancellation's refund):
    # the platform is out exactly the taught lesson's transfer.
    assert await balance(ledger.package_credit(package.id)) == 0
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await balance(ledger.CASH) == PACKAGE - (VALUE - FEE) - VALUE // 2 - (PACKAGE - VALUE // 2)
    # The taught lesson (the platform bears it), and the fees of the three lessons not transferred
    # (disputed, credit returned, cancelled late); each of the four lessons' fees was revenue.
    assert await balance(ledger.REFUNDS) == VALUE + 3 * FEE
    assert await balance(ledger.REVENUE) == -4 * FEE
    assert await ledger_sums() == {"EUR": 0}
    async with session_factory()() as session:
        kinds = (
            await session.execute(select(LedgerTransaction.kind).order_by(LedgerTransaction.occurred_at))
        ).scalars()
        assert list(kinds).count("package_dispute_lost") == 1
    await assert_reconciled()  # the provider shows no refund on the charge, and the ledger books none
    # Replays change nothing; a late "created" does not freeze again.
    before = (await ledger_count(), await snapshot(package.id))
    await deliver(drain_jobs, "charge.dispute.closed", lost)
    await deliver(drain_jobs, "charge.dispute.created", dispute(package))
    assert (await ledger_count(), await snapshot(package.id)) == before
    with pytest.raises(Conflict):
        await package_refund_request(student=await fresh(learner), package_id=package.id)


@pytest.mark.parametrize("outcome", ["won", "lost"])
async def test_closed_before_created_ends_in_the_same_state(drain_jobs, outcome):
    tutor = await paid_tutor()
    states, cash = [], []
    for n, closed_first in enumerate((False, True)):
        learner = await student(email=f"learner{n}@example.com")
        _t, _l, package = await setup(drain_jobs, learner=learner, tutor=tutor)
        await booked(tutor, learner, drain_jobs, days=2 + n)
        await booked(tutor, learner, drain_jobs, days=4 + n)
        created = dispute(package, dispute_id=f"dp_{n}")
        closed = dispute(package, dispute_id=f"dp_{n}", status=outcome)
        order = [("charge.dispute.closed", closed), ("charge.dispute.created", created)]
        if not closed_first:
            order.reverse()
        for kind, obj in order + order:  # and each replayed
            await deliver(drain_jobs, kind, obj)
        state = await snapshot(package.id)
        states.append(tuple(s if not isinstance(s, tuple) else tuple(x[:2] for x in s) for s in state))
        cash.append(await balance(ledger.package_credit(package.id)))
    assert states[0] == states[1]
    assert states[0][4] == outcome
    if outcome == "lost":
        assert states[0][:3] == (PackageStatus.refunded, 0, 0)
        assert states[0][5] == ((TransferStatus.cancelled, VALUE), (TransferStatus.cancelled, VALUE))
    else:
        assert states[0][:4] == (PackageStatus.active, 3, PACKAGE - 2 * VALUE, False)
        assert states[0][5] == ((TransferStatus.none, 0), (TransferStatus.none, 0))
    assert cash[0] == cash[1]
    assert await ledger_sums() == {"EUR": 0}


async def test_a_dispute_before_the_packages_payment_waits_for_it(drain_jobs):
    tutor = await paid_tutor()
    learner = await student()
    await offer(tutor, {5: 10})
    from payouts.packages import package_checkout_start

    await package_checkout_start(student=await fresh(learner), tutor_id=tutor.id, lessons=5)
    async with session_factory()() as session:
        package = await session.scalar(select(LessonPackage).where(LessonPackage.student_id == learner.id))
    async with transaction() as session:  # the intent is known, the payment event is not applied yet
        (await session.get(LessonPackage, package.id)).payment_intent_id = "pi_pkg_early"
    early = dispute(await load_package(package.id))
    payload = await deliver(drain_jobs, "charge.dispute.created", early)
    async with session_factory()() as session:
        from payouts.models import WebhookEvent

        status = await session.scalar(select(WebhookEvent.status).where(WebhookEvent.event_id == payload["id"]))
    assert status == "deferred"
    assert not (await load_package(package.id)).disputed


async def test_the_student_sees_the_frozen_package(client, drain_jobs):
    _tutor, learner, package = await setup(drain_jobs)
    await deliver(drain_jobs, "charge.dispute.created", dispute(package))
    await log_in(client, learner.email, "correct horse battery")
    html = (await client.get("/payments/packages")).text
    assert "data-frozen" in html and "payment dispute" in html
    assert "Refund unused credits" not in html


async def test_a_refund_event_on_the_packages_charge_is_not_taken_by_a_transferred_lesson(drain_jobs):
    """A credit-paid lesson carries the package's charge id once transferred: the package's
    ``charge.refunded`` (a pro-rata refund) must not be booked as a refund of that lesson."""
    tutor, learner, package = await setup(drain_jobs)
    taught = await taught_and_transferred(tutor, learner, drain_jobs, days=2)
    assert (await load_payment(taught)).charge_id == package.charge_id
    before = await ledger_count()
    charge = {
        "id": package.charge_id,
        "object": "charge",
        "payment_intent": package.payment_intent_id,
        "amount_refunded": 5000,
    }
    await deliver(drain_jobs, "charge.refunded", charge)
    assert (await load_payment(taught)).refunded_amount == 0
    assert await ledger_count() == before
    assert await ledger_sums() == {"EUR": 0}
