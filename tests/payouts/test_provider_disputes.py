"""Provider disputes (chargebacks) of a lesson's charge: a lost dispute is booked in the ledger
(before and after the transfer) and the lesson cannot be refunded again; a dispute's late
``created`` does not freeze the transfer again; a won dispute with an admin dispute settled already
releases the transfer; any interleaving of duplicated and reordered events ends in the same state
with a balanced ledger."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction
from payouts import ledger
from payouts.models import LedgerEntry, LedgerTransaction, PaymentStatus, TransferStatus
from payouts.providers import get_provider
from payouts.reconcile import reconcile
from payouts.services import (
    checkout_start,
    dispute_open,
    dispute_refusal,
    dispute_resolve,
    event_process,
    event_receive,
    events_retry_deferred,
    offline_checkout_pay,
    payment_request_refund,
    refund_to_total,
    transfer_for_booking,
)
from scheduling import bookings
from scheduling.models import BookingStatus
from tests.helpers import make_user
from tests.payouts.support import (
    balance,
    enable_payouts,
    event,
    held_booking,
    ledger_sums,
    load_booking,
    load_payment,
    setup_held,
)
from tests.scheduling.bookings_support import bookable_tutor, student

FEE = 675  # of 4500 at the test settings' fee


async def _paid(drain_jobs, *, complete: bool = True):
    tutor, learner, booking = await setup_held()
    async with session_factory()() as session:
        row = await session.get(User, learner.id)
    url = await checkout_start(booking_id=booking.id, student=row)
    await offline_checkout_pay(session_id=url.rsplit("/", 1)[1], student=row)
    drain_jobs()
    booking = await load_booking(booking.id)
    if complete:
        async with transaction() as session:
            await bookings.booking_complete(session, booking_id=booking.id, at=booking.ends_at + timedelta(minutes=1))
        drain_jobs()
    return tutor, learner, await load_booking(booking.id)


async def _dispute(booking_id, kind: str, status: str | None = None, dispute_id: str = "dp_lesson_1") -> str:
    payment = await load_payment(booking_id)
    intent = await get_provider().retrieve_payment_intent(payment.payment_intent_id)
    obj = {"id": dispute_id, "object": "dispute", "charge": intent["latest_charge"], "amount": payment.paid_amount}
    obj["payment_intent"] = payment.payment_intent_id
    if status:
        obj["status"] = status
    evt = event(kind, obj)
    await event_receive(endpoint="platform", event=evt)
    return await event_process(evt["id"])


async def _reconciled() -> list:
    async with session_factory()() as session:
        report = await reconcile(session, get_provider())
    return report.differences


async def test_a_lost_dispute_before_the_transfer_cancels_what_the_tutor_was_owed(drain_jobs):
    tutor, _learner, booking = await _paid(drain_jobs)
    assert await _dispute(booking.id, "charge.dispute.created") == "processed"
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.frozen
    assert await _dispute(booking.id, "charge.dispute.closed", "lost") == "processed"
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.cancelled and payment.transfer_id is None
    assert payment.refunded_amount == payment.refund_requested == 4500
    assert await balance(ledger.CASH) == 0
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await balance(ledger.REVENUE) == -FEE and await balance(ledger.REFUNDS) == FEE
    assert await ledger_sums() == {"EUR": 0}
    # The transfer is never made, and nothing can be refunded a second time.
    assert await transfer_for_booking(booking_id=booking.id, now=booking.ends_at + timedelta(days=5)) is None
    assert await refund_to_total(booking_id=booking.id, total=4500) == 4500
    async with transaction() as session:
        await payment_request_refund(session, booking_id=booking.id, total=4500)
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 4500 and payment.transfer_status == TransferStatus.cancelled
    assert await balance(ledger.CASH) == 0 and await ledger_sums() == {"EUR": 0}
    assert await _reconciled() == []
    # Replays change nothing.
    assert await _dispute(booking.id, "charge.dispute.closed", "lost") == "processed"
    assert await _dispute(booking.id, "charge.dispute.created") == "processed"
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.cancelled
    assert await balance(ledger.CASH) == 0 and await ledger_sums() == {"EUR": 0}


async def test_a_lost_dispute_after_a_partial_refund_takes_only_the_rest(drain_jobs):
    tutor, _learner, booking = await _paid(drain_jobs)
    assert await refund_to_total(booking_id=booking.id, total=1000) == 1000
    assert await _dispute(booking.id, "charge.dispute.closed", "lost") == "processed"
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 4500 and payment.transfer_status == TransferStatus.cancelled
    assert await balance(ledger.CASH) == 0 and await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await balance(ledger.REFUNDS) == FEE and await ledger_sums() == {"EUR": 0}
    assert await _reconciled() == []  # the provider shows 10.00 refunded; the loss is counted apart


async def test_a_lost_dispute_after_the_transfer_is_the_platforms_loss_and_nothing_is_refunded_again(drain_jobs):
    tutor, _learner, booking = await _paid(drain_jobs)
    assert await transfer_for_booking(booking_id=booking.id, now=booking.ends_at + timedelta(days=3))
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.paid
    assert await _dispute(booking.id, "charge.dispute.created") == "processed"
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.paid  # gone already
    assert await _dispute(booking.id, "charge.dispute.closed", "lost") == "processed"
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.paid and payment.transfer_reversed_amount == 0
    assert payment.refunded_amount == 4500
    # The bank took all 45.00 back from the platform's balance, 38.25 of which the tutor has: the
    # platform bears the whole loss; the tutor owes nothing and was owed nothing.
    assert await balance(ledger.CASH) == 4500 - (4500 - FEE) - 4500
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await balance(ledger.REFUNDS) == 4500
    assert await balance(ledger.REVENUE) == -FEE and await ledger_sums() == {"EUR": 0}
    assert await _reconciled() == []
    # No dispute, admin refund or later refund takes money a second time.
    assert dispute_refusal(booking, payment, booking.ends_at) is not None
    assert await refund_to_total(booking_id=booking.id, total=4500) == 4500
    async with transaction() as session:
        await payment_request_refund(session, booking_id=booking.id, total=4500)
    drain_jobs()
    assert (await load_payment(booking.id)).transfer_reversed_amount == 0
    assert await balance(ledger.CASH) == -(4500 - FEE) and await ledger_sums() == {"EUR": 0}


async def test_a_late_created_after_a_won_dispute_does_not_freeze_the_transfer_again(drain_jobs):
    _tutor, _learner, booking = await _paid(drain_jobs)
    assert await _dispute(booking.id, "charge.dispute.closed", "won") == "processed"
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.none
    assert await _dispute(booking.id, "charge.dispute.created") == "processed"
    assert await _dispute(booking.id, "charge.dispute.closed", "won") == "processed"
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.none and payment.provider_dispute_id == "dp_lesson_1"
    assert await transfer_for_booking(booking_id=booking.id, now=booking.ends_at + timedelta(days=3))
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.paid
    assert await ledger_sums() == {"EUR": 0} and await balance(ledger.CASH) == FEE


async def test_a_won_dispute_after_the_admin_released_the_lesson_pays_the_tutor(drain_jobs):
    tutor, learner, booking = await _paid(drain_jobs)
    async with transaction() as session:
        row = await session.get(User, learner.id)
        dispute = await dispute_open(session, student=row, booking_id=booking.id, reason="The video never worked.")
    assert await _dispute(booking.id, "charge.dispute.created") == "processed"
    admin = await make_user(email="admin@example.com", role="admin")
    async with transaction() as session:
        await dispute_resolve(
            session, admin=admin, dispute_id=dispute.id, outcome="release", amount=None, reason="Lesson was fine"
        )
    drain_jobs()
    # The bank's dispute is still open: the transfer stays frozen.
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.frozen
    assert await _dispute(booking.id, "charge.dispute.closed", "won") == "processed"
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.paid and payment.transfer_amount == 4500 - FEE
    assert await balance(ledger.tutor_payable(tutor.id)) == 0 and await ledger_sums() == {"EUR": 0}


async def test_a_won_dispute_while_the_admin_dispute_is_open_keeps_the_transfer_frozen(drain_jobs):
    _tutor, learner, booking = await _paid(drain_jobs)
    async with transaction() as session:
        row = await session.get(User, learner.id)
        dispute = await dispute_open(session, student=row, booking_id=booking.id, reason="The video never worked.")
    assert await _dispute(booking.id, "charge.dispute.closed", "won") == "processed"
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.frozen
    admin = await make_user(email="admin@example.com", role="admin")
    async with transaction() as session:
        await dispute_resolve(
            session, admin=admin, dispute_id=dispute.id, outcome="release", amount=None, reason="Lesson was fine"
        )
    drain_jobs()
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.paid


# ---- property: interleavings with the dispute's events ----------------------------------------------

N_EVENTS = 5


def _events(booking, payment, lost: bool) -> list[dict]:
    pi = f"pi_{uuid.uuid4().hex[:12]}"
    session = {
        "id": payment.checkout_session_id,
        "object": "checkout.session",
        "payment_status": "paid",
        "status": "complete",
        "amount_total": booking.price_amount,
        "currency": booking.currency.lower(),
        "metadata": {"booking_id": str(booking.id)},
        "client_reference_id": str(booking.id),
        "payment_intent": pi,
    }
    charge = {"id": f"ch_{pi[3:]}", "object": "charge", "amount": booking.price_amount, "payment_intent": pi}
    dispute = {"id": f"dp_{pi[3:]}", "object": "dispute", "charge": charge["id"], "payment_intent": pi}
    return [
        event("checkout.session.completed", session, created=100),
        event("charge.refunded", {**charge, "amount_refunded": 1000}, created=101),
        event("charge.dispute.created", {**dispute, "status": "needs_response"}, created=102),
        event("charge.dispute.closed", {**dispute, "status": "lost" if lost else "won"}, created=103),
        event("charge.dispute.closed", {**dispute, "status": "lost" if lost else "won"}, created=104),  # a resend
    ]


deliveries = st.lists(st.integers(0, N_EVENTS - 1), min_size=0, max_size=2 * N_EVENTS).flatmap(
    lambda extra: st.permutations(list(range(N_EVENTS)) + extra)
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=deliveries, lost=st.booleans(), receive_all_first=st.booleans())
async def test_any_interleaving_with_a_dispute_gives_the_same_state(order, lost, receive_all_first):
    tag = uuid.uuid4().hex[:8]
    tutor = await bookable_tutor(email=f"t{tag}@example.com")
    await enable_payouts(tutor, account_id=f"acct_{tag}")
    learner = await student(email=f"s{tag}@example.com")
    booking = await held_booking(tutor, learner)
    async with session_factory()() as session:
        learner_row = await session.get(User, learner.id)
    await checkout_start(booking_id=booking.id, student=learner_row)
    events = _events(booking, await load_payment(booking.id), lost)
    if receive_all_first:
        for i in order:
            await event_receive(endpoint="platform", event=events[i])
        for i in order:
            await event_process(events[i]["id"])
    else:
        for i in order:
            await event_receive(endpoint="platform", event=events[i])
            await event_process(events[i]["id"])
    await events_retry_deferred()

    booking = await load_booking(booking.id)
    payment = await load_payment(booking.id)
    assert booking.status == BookingStatus.confirmed and payment.status == PaymentStatus.paid
    assert payment.provider_dispute_id == events[2]["data"]["object"]["id"]
    async with session_factory()() as session:
        rows = await session.execute(
            select(LedgerEntry.account, LedgerEntry.amount)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerTransaction.booking_id == booking.id)
        )
        balances: dict[str, int] = {}
        for acct, amount in rows.all():
            balances[acct] = balances.get(acct, 0) + amount
    assert sum(balances.values()) == 0
    assert balances[ledger.REVENUE] == -FEE
    if lost:
        assert payment.refunded_amount == payment.refund_requested == 4500
        assert payment.transfer_status == TransferStatus.cancelled
        assert balances[ledger.CASH] == 0
        assert balances[ledger.tutor_payable(tutor.id)] == 0
        assert balances[ledger.REFUNDS] == FEE
    else:
        tutor_share = ledger.tutor_share_of_refund(paid=4500, fee=FEE, refunded_total=1000)
        assert payment.refunded_amount == 1000
        assert payment.transfer_status == TransferStatus.none  # not frozen, whatever the order
        assert balances[ledger.CASH] == 3500
        assert balances[ledger.tutor_payable(tutor.id)] == -((4500 - FEE) - tutor_share)
        assert balances[ledger.REFUNDS] == 1000 - tutor_share
