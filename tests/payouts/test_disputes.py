"""Disputes: a student disputes within the review window (the transfer freezes); an admin settles
with a full or partial refund or by paying the tutor, with an audit record; the ledger balances."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction
from payouts import ledger
from payouts.models import Dispute, TransferStatus
from payouts.services import checkout_start, offline_checkout_pay, transfer_for_booking
from scheduling import bookings
from tests.helpers import csrf_token, log_in, log_out, make_user
from tests.payouts.support import balance, ledger_sums, load_booking, load_payment, setup_held

PASSWORD = "correct horse battery"


async def _paid_completed(drain_jobs):
    tutor, learner, booking = await setup_held()
    async with session_factory()() as session:
        row = await session.get(User, learner.id)
    url = await checkout_start(booking_id=booking.id, student=row)
    await offline_checkout_pay(session_id=url.rsplit("/", 1)[1], student=row)
    drain_jobs()
    booking = await load_booking(booking.id)
    async with transaction() as session:
        await bookings.booking_complete(session, booking_id=booking.id, at=booking.ends_at + timedelta(minutes=1))
    drain_jobs()
    return tutor, learner, booking


async def _open(client, booking_id, reason):
    token = await csrf_token(client, f"/pay/{booking_id}/dispute")
    return await client.post(
        f"/pay/{booking_id}/dispute", data={"_csrf_token": token, "reason": reason}, follow_redirects=False
    )


async def _resolve(client, dispute_id, **data):
    page = await client.get("/admin/disputes")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    return await client.post(
        f"/admin/disputes/{dispute_id}", data={"_csrf_token": token, **data}, follow_redirects=False
    )


async def _dispute_id(booking_id):
    async with session_factory()() as session:
        return await session.scalar(select(Dispute.id).where(Dispute.booking_id == booking_id))


async def test_a_dispute_freezes_the_transfer_and_a_partial_refund_settles_it(client, drain_jobs):
    tutor, learner, booking = await _paid_completed(drain_jobs)
    await log_in(client, learner.email, PASSWORD)
    short = await _open(client, booking.id, "bad")
    assert short.status_code == 422 and "10 to 2000 characters" in short.text
    opened = await _open(client, booking.id, "The tutor arrived 30 minutes late and left early.")
    assert opened.status_code == 303
    again = await _open(client, booking.id, "The tutor arrived 30 minutes late and left early.")
    assert again.status_code == 409
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.frozen
    # Even after the window, a frozen transfer does not go.
    assert await transfer_for_booking(booking_id=booking.id, now=booking.ends_at + timedelta(days=5)) is None

    await log_out(client)
    admin = await make_user(email="admin@example.com", role="admin")
    await log_in(client, admin.email, PASSWORD)
    dispute_id = await _dispute_id(booking.id)
    too_much = await _resolve(client, dispute_id, outcome="partial", amount="45.01", reason="Late tutor")
    assert too_much.status_code == 422 and "cannot be larger than what was paid" in too_much.text
    no_reason = await _resolve(client, dispute_id, outcome="partial", amount="15.00", reason="")
    assert no_reason.status_code == 422
    done = await _resolve(client, dispute_id, outcome="partial", amount="15.00", reason="Tutor was late")
    assert done.status_code == 303
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 1500
    # The rest goes to the tutor without waiting for the window: a settled dispute releases it.
    assert payment.transfer_status == TransferStatus.paid
    assert payment.transfer_amount == 3825 - ledger.tutor_share_of_refund(paid=4500, fee=675, refunded_total=1500)
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await ledger_sums() == {"EUR": 0}
    async with session_factory()() as session:
        actions = (await session.execute(select(AuditEntry.action, AuditEntry.actor_id))).all()
    assert ("payment.dispute_open", learner.id) in actions
    assert ("payment.dispute_resolve", admin.id) in actions


async def test_release_pays_the_tutor_and_a_full_refund_pays_nobody(client, drain_jobs):
    tutor, learner, booking = await _paid_completed(drain_jobs)
    async with transaction() as session:
        row = await session.get(User, learner.id)
        from payouts.services import dispute_open, dispute_resolve

        dispute = await dispute_open(session, student=row, booking_id=booking.id, reason="The video never worked.")
    admin = await make_user(email="admin@example.com", role="admin")
    async with transaction() as session:
        await dispute_resolve(
            session, admin=admin, dispute_id=dispute.id, outcome="refund", amount=None, reason="No lesson happened"
        )
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 4500
    assert payment.transfer_status == TransferStatus.cancelled
    assert await balance(ledger.CASH) == 0 and await ledger_sums() == {"EUR": 0}
    assert tutor


async def test_the_window_closes(drain_jobs):
    _tutor, learner, booking = await _paid_completed(drain_jobs)
    from marketplace.errors import Conflict
    from payouts.services import dispute_open

    async with transaction() as session:
        row = await session.get(User, learner.id)
        try:
            await dispute_open(
                session,
                student=row,
                booking_id=booking.id,
                reason="Too late to complain about it.",
                now=booking.ends_at + timedelta(hours=49),
            )
        except Conflict as exc:
            assert "has passed" in exc.message
        else:
            raise AssertionError("a dispute after the window was accepted")


async def test_the_lesson_page_links_the_receipt_and_the_dispute_form_while_a_dispute_is_possible(client, drain_jobs):
    tutor, learner, booking = await _paid_completed(drain_jobs)
    await log_in(client, learner.email, PASSWORD)
    page = await client.get(f"/lessons/{booking.id}")
    assert f'id="dispute-link" href="/pay/{booking.id}/dispute"' in page.text
    assert "Report a problem / open a dispute" in page.text
    payment = await load_payment(booking.id)
    assert f'id="receipt-link" href="/payments/{payment.id}"' in page.text
    assert (await _open(client, booking.id, "The tutor did not show up for half of the lesson.")).status_code == 303
    page = await client.get(f"/lessons/{booking.id}")
    assert "dispute-link" not in page.text and "receipt-link" in page.text
    await log_out(client)
    await log_in(client, tutor.email, PASSWORD)
    page = await client.get(f"/lessons/{booking.id}")
    assert page.status_code == 200 and "dispute-link" not in page.text and "receipt-link" not in page.text
