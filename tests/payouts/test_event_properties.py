"""Property: any interleaving of duplicated and reordered provider events leaves the same final
state (booking, payment, account, payout) and a ledger balanced to the cent."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import session_factory
from payouts import ledger
from payouts.models import LedgerEntry, LedgerTransaction, PaymentStatus, PayoutAccount, ProviderPayout, TransferStatus
from payouts.services import checkout_start, event_process, event_receive, events_retry_deferred
from scheduling.models import BookingStatus
from tests.payouts.support import enable_payouts, event, held_booking, load_booking, load_payment
from tests.scheduling.bookings_support import bookable_tutor, student

N_EVENTS = 9


def _events(booking, payment, account_id: str) -> list[dict]:
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
    account = {"id": account_id, "object": "account", "details_submitted": True}
    payout = {"id": f"po_{pi[3:]}", "object": "payout", "amount": 1234, "currency": "eur"}
    return [
        event("checkout.session.completed", session, created=100),
        event("checkout.session.expired", {**session, "status": "expired", "payment_status": "unpaid"}, created=101),
        event("charge.refunded", {**charge, "amount_refunded": 1000}, created=102),
        event("charge.refunded", {**charge, "amount_refunded": 2500}, created=103),
        event(
            "charge.dispute.created", {"id": f"dp_{pi[3:]}", "charge": charge["id"], "payment_intent": pi}, created=104
        ),
        event(
            "account.updated",
            {**account, "charges_enabled": False, "payouts_enabled": False},
            account=account_id,
            created=105,
        ),
        event(
            "account.updated",
            {**account, "charges_enabled": True, "payouts_enabled": True},
            account=account_id,
            created=106,
        ),
        event("payout.paid", {**payout, "status": "paid"}, account=account_id, created=107),
        event(
            "payout.failed",
            {**payout, "status": "failed", "failure_message": "closed"},
            account=account_id,
            created=108,
        ),
    ]


deliveries = st.lists(st.integers(0, N_EVENTS - 1), min_size=N_EVENTS, max_size=3 * N_EVENTS).flatmap(
    lambda extra: st.permutations(list(range(N_EVENTS)) + extra)
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=deliveries, receive_all_first=st.booleans())
async def test_any_interleaving_of_duplicated_events_gives_the_same_state(order, receive_all_first):
    tag = uuid.uuid4().hex[:8]
    tutor = await bookable_tutor(email=f"t{tag}@example.com")
    account_id = f"acct_{tag}"
    await enable_payouts(tutor, account_id=account_id)
    learner = await student(email=f"s{tag}@example.com")
    booking = await held_booking(tutor, learner)
    async with session_factory()() as session:
        learner_row = await session.get(User, learner.id)
    await checkout_start(booking_id=booking.id, student=learner_row)
    payment = await load_payment(booking.id)
    events = _events(booking, payment, account_id)

    if receive_all_first:
        for i in order:
            await event_receive(endpoint="platform", event=events[i])
        for i in order:
            await event_process(events[i]["id"])
    else:
        for i in order:
            await event_receive(endpoint="platform", event=events[i])
            await event_process(events[i]["id"])
    await events_retry_deferred()  # the periodic repair pass

    booking = await load_booking(booking.id)
    payment = await load_payment(booking.id)
    assert booking.status == BookingStatus.confirmed
    assert payment.status == PaymentStatus.paid
    assert payment.paid_amount == 4500 and payment.refunded_amount == 2500
    assert payment.transfer_status == TransferStatus.frozen
    async with session_factory()() as session:
        account = await session.scalar(select(PayoutAccount).where(PayoutAccount.account_id == account_id))
        assert account.ready
        payout = await session.scalar(select(ProviderPayout).where(ProviderPayout.account_id == account_id))
        assert payout.status == "failed" and payout.tutor_id == tutor.id
        rows = await session.execute(
            select(LedgerEntry.account, LedgerEntry.amount)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerTransaction.booking_id == booking.id)
        )
        balances: dict[str, int] = {}
        for acct, amount in rows.all():
            balances[acct] = balances.get(acct, 0) + amount
    assert sum(balances.values()) == 0
    assert balances[ledger.CASH] == 2000
    tutor_left = (4500 - 675) - ledger.tutor_share_of_refund(paid=4500, fee=675, refunded_total=2500)
    assert balances[ledger.tutor_payable(tutor.id)] == -tutor_left
    assert balances[ledger.REVENUE] == -675
    assert balances[ledger.REFUNDS] == 2500 - (ledger.tutor_share_of_refund(paid=4500, fee=675, refunded_total=2500))
