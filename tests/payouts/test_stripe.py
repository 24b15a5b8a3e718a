"""Stripe Connect at the HTTP boundary (stripe.StripeClient with a recording http_client) and
through webhooks signed by the documented scheme."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace.db import session_factory, transaction, utcnow
from payouts import ledger
from payouts.models import PaymentStatus, PayoutAccount, TransferStatus, WebhookEvent
from payouts.services import refund_to_total, transfer_for_booking
from scheduling import bookings
from scheduling.models import BookingStatus
from tests.helpers import csrf_token, log_in
from tests.payouts.conftest import STRIPE_KEY
from tests.payouts.support import (
    CONNECT_SECRET,
    WEBHOOK_SECRET,
    balance,
    checkout_session,
    deliver,
    enable_payouts,
    event,
    held_booking,
    ledger_sums,
    load_booking,
    load_payment,
    sign,
)
from tests.scheduling.bookings_support import bookable_tutor, student

PASSWORD = "correct horse battery"


async def _stripe_held(account_id: str = "acct_1TutorStripe"):
    tutor = await bookable_tutor()
    await enable_payouts(tutor, provider="stripe", account_id=account_id)
    learner = await student()
    booking = await held_booking(tutor, learner)
    return tutor, learner, booking


async def _start(client, booking_id):
    token = await csrf_token(client, "/payments")
    return await client.post(f"/pay/{booking_id}", data={"_csrf_token": token}, follow_redirects=False)


async def _events() -> list[WebhookEvent]:
    async with session_factory()() as session:
        return list((await session.execute(select(WebhookEvent).order_by(WebhookEvent.created_at))).scalars())


async def test_the_app_starts_with_stripe_settings_without_calling_stripe(stripe_fake, client):
    from payouts.providers import get_provider, set_provider
    from payouts.stripe import StripeProvider

    set_provider(None)  # the provider the settings choose
    assert isinstance(get_provider(), StripeProvider)
    assert (await client.get("/healthz")).status_code == 200
    assert stripe_fake.requests == []


async def test_checkout_session_request_follows_the_documented_parameters(stripe_fake, client):
    _tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    response = await _start(client, booking.id)
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    req = stripe_fake.last("POST", "/v1/checkout/sessions")
    assert req.headers["authorization"] == f"Bearer {STRIPE_KEY}"
    assert req.headers["idempotency-key"] == f"checkout:{booking.id}:1"
    p = req.params
    assert p["mode"] == "payment"
    assert p["line_items[0][price_data][currency]"] == "eur"
    assert p["line_items[0][price_data][unit_amount]"] == "4500"
    assert p["line_items[0][quantity]"] == "1"
    assert p["line_items[0][price_data][product_data][name]"]
    assert p["metadata[booking_id]"] == str(booking.id)
    assert p["client_reference_id"] == str(booking.id)
    assert p["payment_intent_data[transfer_group]"] == f"booking_{booking.id}"
    assert p["payment_intent_data[metadata][booking_id]"] == str(booking.id)
    assert p["customer_email"] == learner.email
    assert p["success_url"].endswith(f"/pay/{booking.id}/success?session_id={{CHECKOUT_SESSION_ID}}")
    assert p["cancel_url"].endswith(f"/pay/{booking.id}/cancel")
    # Stripe's minimum lifetime is 30 minutes; the session expires as soon after the hold as allowed.
    assert int(p["expires_at"]) >= int(time.time()) + 30 * 60
    assert int(p["expires_at"]) <= int(time.time()) + 32 * 60
    # A double click: the same session, no second request.
    again = await _start(client, booking.id)
    assert again.headers["location"] == response.headers["location"]
    assert len([r for r in stripe_fake.requests if r.path == "/v1/checkout/sessions"]) == 1


async def test_signed_checkout_completed_confirms_and_writes_the_ledger_once(stripe_fake, client, drain_jobs):
    tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    await _start(client, booking.id)
    session_id = (await load_payment(booking.id)).checkout_session_id
    payload = event("checkout.session.completed", checkout_session(booking, session_id=session_id))
    started = time.perf_counter()
    response = await deliver(client, payload)
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 200 and response.json()["duplicate"] is False
    replay = await deliver(client, payload)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    drain_jobs()
    assert (await load_booking(booking.id)).status == BookingStatus.confirmed
    assert await balance(ledger.CASH) == 4500
    assert await balance(ledger.tutor_payable(tutor.id)) == -3825
    assert len(await _events()) == 1
    # The success page informs; it is not where fulfilment happens.
    page = await client.get(f"/pay/{booking.id}/success?session_id={session_id}")
    assert "your lesson is confirmed" in page.text


@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "stale timestamp", "no header", "not json"])
async def test_bad_signatures_are_rejected_and_nothing_is_applied(stripe_fake, client, drain_jobs, case):
    _tutor, _learner, booking = await _stripe_held()
    body = json.dumps(event("checkout.session.completed", checkout_session(booking, session_id="cs_test_x"))).encode()
    headers = {"Content-Type": "application/json"}
    if case == "wrong secret":
        headers["Stripe-Signature"] = sign(body, "whsec_forged")
    elif case == "tampered body":
        headers["Stripe-Signature"] = sign(body, WEBHOOK_SECRET)
        body = body.replace(b'"amount_total": 4500', b'"amount_total": 1')
    elif case == "stale timestamp":
        headers["Stripe-Signature"] = sign(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600)
    elif case == "not json":
        body = b"not json"
        headers["Stripe-Signature"] = sign(body, WEBHOOK_SECRET)
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400
    drain_jobs()
    assert await _events() == []
    assert (await load_booking(booking.id)).status == BookingStatus.held


async def test_connect_events_need_the_connect_secret_and_an_account(stripe_fake, client):
    obj = {"id": "acct_1", "object": "account", "charges_enabled": True, "payouts_enabled": True}
    wrong = await deliver(client, event("account.updated", obj, account="acct_1"), path="/webhooks/stripe-connect")
    assert wrong.status_code == 400  # signed with the platform secret
    no_account = await deliver(
        client, event("account.updated", obj), secret=CONNECT_SECRET, path="/webhooks/stripe-connect"
    )
    assert no_account.status_code == 400
    assert await _events() == []


async def test_refund_before_completion_is_applied_once_the_payment_arrives(stripe_fake, client, drain_jobs):
    """Out of order: charge.refunded before checkout.session.completed."""
    tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    await _start(client, booking.id)
    session_id = (await load_payment(booking.id)).checkout_session_id
    charge = {
        "id": "ch_test_1",
        "object": "charge",
        "amount": 4500,
        "amount_refunded": 1000,
        "currency": "eur",
        "payment_intent": "pi_test_1",
        "refunded": False,
    }
    await deliver(client, event("charge.refunded", charge))
    drain_jobs()
    assert [e.status for e in await _events()] == ["deferred"]
    await deliver(client, event("checkout.session.completed", checkout_session(booking, session_id=session_id)))
    drain_jobs()
    assert {e.status for e in await _events()} == {"processed"}
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 1000
    assert await balance(ledger.CASH) == 3500
    # The tutor's share of the refund (85 %) leaves the payable, the rest is the platform's.
    assert await balance(ledger.tutor_payable(tutor.id)) == -(3825 - 850)
    assert await balance(ledger.REFUNDS) == 150
    assert await ledger_sums() == {"EUR": 0}


async def test_amount_or_currency_mismatch_is_refunded_not_confirmed(stripe_fake, client, drain_jobs):
    _tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    await _start(client, booking.id)
    session_id = (await load_payment(booking.id)).checkout_session_id
    await deliver(
        client, event("checkout.session.completed", checkout_session(booking, session_id=session_id, amount=100))
    )
    drain_jobs()
    assert (await load_booking(booking.id)).status == BookingStatus.held
    payment = await load_payment(booking.id)
    assert payment.status == PaymentStatus.unapplied
    refund = stripe_fake.last("POST", "/v1/refunds")
    assert refund.params["payment_intent"] == "pi_test_1"
    assert refund.params["amount"] == "100"
    assert refund.headers["idempotency-key"] == f"refund:{payment.id}:100"
    assert payment.refunded_amount == 100
    assert await ledger_sums() == {"EUR": 0}
    assert await balance(ledger.CASH) == 0


async def _paid_and_completed(stripe_fake, client, drain_jobs):
    tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    await _start(client, booking.id)
    session_id = (await load_payment(booking.id)).checkout_session_id
    await deliver(client, event("checkout.session.completed", checkout_session(booking, session_id=session_id)))
    drain_jobs()
    async with transaction() as session:
        b = await load_booking(booking.id)
        await bookings.booking_complete(session, booking_id=booking.id, at=b.ends_at + timedelta(minutes=1))
    drain_jobs()
    assert not [r for r in stripe_fake.requests if r.path == "/v1/transfers"]  # the review window is open
    await transfer_for_booking(booking_id=booking.id, now=b.ends_at + timedelta(hours=48, minutes=1))
    return tutor, learner, booking


async def test_completion_transfers_the_tutors_share_once(stripe_fake, client, drain_jobs):
    tutor, _learner, booking = await _paid_and_completed(stripe_fake, client, drain_jobs)
    transfer = stripe_fake.last("POST", "/v1/transfers")
    assert transfer.params == {
        "amount": "3825",
        "currency": "eur",
        "destination": "acct_1TutorStripe",
        "transfer_group": f"booking_{booking.id}",
        "source_transaction": "ch_test_1",
        "metadata[booking_id]": str(booking.id),
    }
    assert transfer.headers["idempotency-key"] == f"transfer:{booking.id}"
    assert "stripe-account" not in transfer.headers  # a platform call
    assert stripe_fake.last("GET", "/v1/payment_intents/pi_test_1")
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.paid and payment.transfer_amount == 3825
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await transfer_for_booking(booking_id=booking.id, now=utcnow() + timedelta(days=9)) == payment.transfer_id
    assert len([r for r in stripe_fake.requests if r.path == "/v1/transfers"]) == 1
    assert await ledger_sums() == {"EUR": 0}


async def test_refund_after_the_transfer_reverses_it_first(stripe_fake, client, drain_jobs):
    tutor, _learner, booking = await _paid_and_completed(stripe_fake, client, drain_jobs)
    payment = await load_payment(booking.id)
    await refund_to_total(booking_id=booking.id, total=2000)
    reversal = stripe_fake.last("POST", f"/v1/transfers/{payment.transfer_id}/reversals")
    assert reversal.params == {"amount": "1700"}  # the tutor's 85 % of 20.00
    assert reversal.headers["idempotency-key"] == f"reversal:{payment.id}:2000"
    refund = stripe_fake.last("POST", "/v1/refunds")
    assert refund.params["amount"] == "2000"
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 2000 and payment.transfer_reversed_amount == 1700
    # The webhooks that follow change nothing.
    transfer = dict(stripe_fake.objects[payment.transfer_id])
    await deliver(client, event("transfer.reversed", transfer))
    charge = {
        "id": "ch_test_1",
        "object": "charge",
        "amount": 4500,
        "amount_refunded": 2000,
        "currency": "eur",
        "payment_intent": "pi_test_1",
    }
    await deliver(client, event("charge.refunded", charge))
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.refunded_amount == 2000 and payment.transfer_reversed_amount == 1700
    assert await balance(ledger.CASH) == 4500 - 3825 + 1700 - 2000
    assert await balance(ledger.tutor_payable(tutor.id)) == 0
    assert await ledger_sums() == {"EUR": 0}


async def test_a_provider_dispute_freezes_the_transfer(stripe_fake, client, drain_jobs):
    _tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    await _start(client, booking.id)
    session_id = (await load_payment(booking.id)).checkout_session_id
    await deliver(client, event("checkout.session.completed", checkout_session(booking, session_id=session_id)))
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 4500,
        "charge": "ch_test_1",
        "payment_intent": "pi_test_1",
        "status": "needs_response",
        "reason": "fraudulent",
    }
    await deliver(client, event("charge.dispute.created", dispute))
    drain_jobs()
    async with transaction() as session:
        b = await load_booking(booking.id)
        await bookings.booking_complete(session, booking_id=booking.id, at=b.ends_at + timedelta(minutes=1))
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.transfer_status == TransferStatus.frozen
    assert not [r for r in stripe_fake.requests if r.path == "/v1/transfers"]
    await transfer_for_booking(booking_id=booking.id, now=utcnow() + timedelta(days=9))
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.frozen
    await deliver(client, event("charge.dispute.closed", {**dispute, "status": "won"}))
    drain_jobs()
    await transfer_for_booking(booking_id=booking.id, now=utcnow() + timedelta(days=9))
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.paid


async def test_onboarding_creates_an_express_account_and_fresh_links(stripe_fake, client, drain_jobs):
    tutor = await bookable_tutor(payouts=False)
    await log_in(client, tutor.email, PASSWORD)
    token = await csrf_token(client, "/payouts")
    response = await client.post("/payouts/onboarding", data={"_csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://connect.stripe.com/setup/e/acct_")
    create = stripe_fake.last("POST", "/v1/accounts")
    assert create.params["type"] == "express"
    assert create.params["capabilities[card_payments][requested]"] == "true"
    assert create.params["capabilities[transfers][requested]"] == "true"
    assert create.params["metadata[tutor_id]"] == str(tutor.id)
    assert create.headers["idempotency-key"] == f"account:{tutor.id}"
    link = stripe_fake.last("POST", "/v1/account_links")
    account_id = link.params["account"]
    assert link.params["type"] == "account_onboarding"
    assert link.params["refresh_url"].endswith("/payouts/onboarding/refresh")
    assert link.params["return_url"].endswith("/payouts/onboarding/return")
    # The refresh URL makes a new link for the same account (no second account).
    refresh = await client.get("/payouts/onboarding/refresh", follow_redirects=False)
    assert refresh.headers["location"] != response.headers["location"]
    assert len([r for r in stripe_fake.requests if r.path == "/v1/accounts"]) == 1
    # Reaching the return URL does not mean onboarding is done.
    back = await client.get("/payouts/onboarding/return")
    assert "not complete yet" in back.text
    assert stripe_fake.last("GET", f"/v1/accounts/{account_id}")
    # account.updated on the Connect endpoint enables payouts; an older event changes nothing.
    now = int(time.time())
    ready = {
        "id": account_id,
        "object": "account",
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "requirements": {"currently_due": []},
    }
    stale = {**ready, "charges_enabled": False, "payouts_enabled": False, "requirements": {"currently_due": ["x"]}}
    for obj, created in ((ready, now + 10), (stale, now - 10)):
        r = await deliver(
            client,
            event("account.updated", obj, account=account_id, created=created),
            secret=CONNECT_SECRET,
            path="/webhooks/stripe-connect",
        )
        assert r.status_code == 200
    drain_jobs()
    async with session_factory()() as session:
        account = await session.scalar(select(PayoutAccount).where(PayoutAccount.tutor_id == tutor.id))
    assert account.ready and account.requirements_due == []
    assert "Payouts are enabled" in (await client.get("/payouts")).text


async def test_payouts_paid_and_failed_are_recorded_and_shown(stripe_fake, client, drain_jobs):
    tutor = await bookable_tutor()
    await enable_payouts(tutor, provider="stripe", account_id="acct_1Payee")
    now = int(time.time())
    paid = {"id": "po_1", "object": "payout", "amount": 3825, "currency": "eur", "arrival_date": now, "status": "paid"}
    failed = {
        "id": "po_2",
        "object": "payout",
        "amount": 1000,
        "currency": "eur",
        "arrival_date": now,
        "status": "failed",
        "failure_message": "The bank account has been closed.",
    }
    for kind, obj in (("payout.paid", paid), ("payout.failed", failed)):
        await deliver(
            client, event(kind, obj, account="acct_1Payee"), secret=CONNECT_SECRET, path="/webhooks/stripe-connect"
        )
    # A replay of the paid one arriving again later changes nothing.
    drain_jobs()
    await log_in(client, tutor.email, PASSWORD)
    page = await client.get("/payouts")
    assert "38.25" in page.text and "The bank account has been closed." in page.text
    earnings = await client.get("/payouts/earnings")
    assert earnings.status_code == 200


async def test_a_stripe_outage_on_checkout_is_a_clear_message_not_a_500(stripe_fake, client):
    _tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    stripe_fake.fail_next, stripe_fake.fail_times = 500, 3  # the first try and both retries
    response = await _start(client, booking.id)
    assert response.status_code == 303
    assert response.headers["location"] == f"/pay/{booking.id}/cancel"
    async with session_factory()() as session:
        from payouts.models import Payment

        assert await session.scalar(select(func.count()).select_from(Payment)) == 1
    # Trying again works and keeps the idempotency key of the attempt.
    ok = await _start(client, booking.id)
    assert ok.headers["location"].startswith("https://checkout.stripe.com/")
    keys = {r.headers["idempotency-key"] for r in stripe_fake.requests if r.path == "/v1/checkout/sessions"}
    assert keys == {f"checkout:{booking.id}:1"}


async def test_a_lapsed_hold_expires_its_checkout_session(stripe_fake, client, drain_jobs):
    tutor, learner, booking = await _stripe_held()
    await log_in(client, learner.email, PASSWORD)
    await _start(client, booking.id)
    payment = await load_payment(booking.id)
    async with transaction() as session:
        await bookings.booking_expire_lapsed(session, now=utcnow() + timedelta(hours=1))
    drain_jobs()
    expire = stripe_fake.last("POST", f"/v1/checkout/sessions/{payment.checkout_session_id}/expire")
    assert expire.params == {}
    assert (await load_payment(booking.id)).status == PaymentStatus.expired
    # The "checkout.session.expired" webhook that follows is harmless.
    obj = {**stripe_fake.objects[payment.checkout_session_id]}
    await deliver(client, event("checkout.session.expired", obj))
    drain_jobs()
    assert (await load_payment(booking.id)).status == PaymentStatus.expired
    assert tutor


async def test_webhooks_are_not_found_without_stripe_settings(client):
    body = json.dumps({"id": "evt_1", "type": "checkout.session.completed"}).encode()
    response = await client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET)}
    )
    assert response.status_code == 404
    assert await _events() == []


async def test_unknown_event_types_are_acknowledged_and_not_stored(stripe_fake, client):
    response = await deliver(client, event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert response.status_code == 200 and response.json()["ignored"] is True
    assert await _events() == []


async def test_a_burst_of_concurrent_deliveries_stores_each_event_once(stripe_fake, client):
    import asyncio

    same = event("checkout.session.expired", {"id": "cs_test_same", "object": "checkout.session"})
    others = [
        event("checkout.session.expired", {"id": f"cs_test_{i}", "object": "checkout.session"}) for i in range(30)
    ]
    responses = await asyncio.gather(*(deliver(client, payload) for payload in [same] * 10 + others))
    assert {r.status_code for r in responses} == {200}
    fresh = [r.json()["duplicate"] is False for r in responses]
    assert sum(fresh[:10]) == 1 and all(fresh[10:])
    stored = await _events()
    assert len(stored) == 31 and len({e.event_id for e in stored}) == 31
