"""Cancellation refunds, transfers after completion on the offline provider, and the pages:
tutor payouts and earnings (with CSV), student history and receipts, admin finance."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction, utcnow
from payouts import ledger
from payouts.models import TransferStatus
from payouts.services import checkout_start, offline_checkout_pay, offline_onboarding_complete, transfer_for_booking
from scheduling import bookings
from scheduling.models import BookingStatus
from tests.helpers import csrf_token, log_in, make_user
from tests.payouts.support import balance, held_booking, ledger_sums, load_booking, load_payment, setup_held
from tests.scheduling.bookings_support import bookable_tutor, student

PASSWORD = "correct horse battery"


async def _pay(booking_id, learner) -> None:
    async with session_factory()() as session:
        row = await session.get(User, learner.id)
    url = await checkout_start(booking_id=booking_id, student=row)
    await offline_checkout_pay(session_id=url.rsplit("/", 1)[1], student=row)


async def test_a_student_cancellation_refunds_what_the_policy_says(drain_jobs):
    # Policy: free until 24 h before; later 50 %. The lesson is in 10 hours: half back.
    tutor = await bookable_tutor(late_refund_percent=50)
    from tests.payouts.support import enable_payouts

    await enable_payouts(tutor)
    learner = await student()
    soon = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=3)
    booking = await held_booking(tutor, learner, starts_at=soon)
    await _pay(booking.id, learner)
    drain_jobs()
    assert (await load_booking(booking.id)).status == BookingStatus.confirmed
    async with transaction() as session:
        actor = await session.get(User, learner.id)
        cancelled = await bookings.booking_cancel(session, actor=actor, booking_id=booking.id)
        expected = cancelled.refund_amount
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == expected == 2250
    assert payment.transfer_status in (TransferStatus.none, TransferStatus.cancelled)
    assert await balance(ledger.CASH) == 4500 - expected
    assert await ledger_sums() == {"EUR": 0}


async def test_completion_transfers_and_the_pages_show_it(client, drain_jobs):
    tutor, learner, booking = await setup_held()
    await _pay(booking.id, learner)
    drain_jobs()
    async with transaction() as session:
        b = await load_booking(booking.id)
        await bookings.booking_complete(session, booking_id=booking.id, at=b.ends_at + timedelta(minutes=5))
    drain_jobs()
    assert (await load_payment(booking.id)).transfer_id is None  # the review window is open
    await transfer_for_booking(booking_id=booking.id, now=b.ends_at + timedelta(hours=48, seconds=1))
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.paid
    assert payment.transfer_id.startswith("tr_test_")
    assert await balance(ledger.tutor_payable(tutor.id)) == 0

    # The student's history and receipt.
    await log_in(client, learner.email, PASSWORD)
    history = await client.get("/payments")
    assert history.status_code == 200 and "45.00" in history.text
    receipt = await client.get(f"/payments/{payment.id}")
    assert receipt.status_code == 200 and "TEST MODE" in receipt.text and str(payment.id) in receipt.text
    # The tutor's earnings.
    token = await csrf_token(client, "/payments")
    await client.post("/logout", data={"_csrf_token": token})
    await log_in(client, tutor.email, PASSWORD)
    assert (await client.get(f"/payments/{payment.id}")).status_code == 404  # not the tutor's receipt
    earnings = await client.get("/payouts/earnings")
    assert earnings.status_code == 200
    assert "38.25" in earnings.text
    exported = await client.get("/payouts/earnings.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["kind"], r["amount_minor"]) for r in rows] == [("payment", "3825"), ("transfer", "-3825")]
    assert rows[0]["amount"] == "38.25"
    # Students and tutors cannot see the finance page; admins can.
    assert (await client.get("/admin/finance")).status_code == 403
    admin = await make_user(email="admin@example.com", role="admin")
    token = await csrf_token(client, "/payouts")
    await client.post("/logout", data={"_csrf_token": token})
    await log_in(client, admin.email, PASSWORD)
    finance = await client.get("/admin/finance")
    assert finance.status_code == 200
    assert "45.00" in finance.text and "6.75" in finance.text and "38.25" in finance.text


async def test_offline_onboarding_enables_payouts_through_an_event(client, drain_jobs):
    tutor = await bookable_tutor(payouts=False)
    await log_in(client, tutor.email, PASSWORD)
    page = await client.get("/payouts")
    assert "Set up payouts" in page.text and "TEST MODE" in page.text
    token = await csrf_token(client, "/payouts")
    started = await client.post("/payouts/onboarding", data={"_csrf_token": token}, follow_redirects=False)
    url = started.headers["location"]
    assert url.startswith("/payouts/offline-onboarding/acct_test_")
    assert "TEST MODE" in (await client.get(url)).text
    async with session_factory()() as session:
        row = await session.get(User, tutor.id)
    await offline_onboarding_complete(tutor=row)
    drain_jobs()
    assert "Payouts are enabled" in (await client.get("/payouts")).text


async def test_students_cannot_open_the_tutor_payouts_pages(client):
    learner = await student()
    await log_in(client, learner.email, PASSWORD)
    assert (await client.get("/payouts")).status_code == 403
    assert (await client.get("/payouts/earnings.csv")).status_code == 403


async def test_reconcile_lists_every_difference_between_ledger_and_provider(drain_jobs):
    from click.testing import CliRunner

    from marketplace.cli import main
    from payouts.models import OfflineObject
    from payouts.providers import get_provider
    from payouts.reconcile import reconcile

    tutor, learner, booking = await setup_held()
    await _pay(booking.id, learner)
    drain_jobs()
    async with session_factory()() as session:
        report = await reconcile(session, get_provider())
    assert report.ok, report.differences
    assert report.totals == {"EUR": 0} and report.payments == 1
    # Someone refunds 5.00 at the provider's dashboard and the webhook never comes.
    payment = await load_payment(booking.id)
    async with transaction() as session:
        intent = await session.get(OfflineObject, payment.payment_intent_id)
        charge = await session.get(OfflineObject, intent.data["latest_charge"])
        charge.data = {**charge.data, "amount_refunded": 500}
    async with session_factory()() as session:
        report = await reconcile(session, get_provider())
    assert [(d.what, d.ref, d.ledger, d.provider) for d in report.differences] == [
        ("charge.amount_refunded", str(booking.id), 0, 500)
    ]
    result = await asyncio.to_thread(CliRunner().invoke, main, ["payouts", "reconcile"])
    assert result.exit_code == 1, result.output
    assert "charge.amount_refunded" in result.output and "1 difference(s)" in result.output
    assert tutor
