"""Checkout on the offline provider: held booking -> checkout -> TEST MODE payment -> event ->
booking confirmed and ledger written in one transaction; the success page only informs."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from marketplace.db import session_factory, transaction
from marketplace.errors import Conflict
from payouts import ledger
from payouts.models import LedgerTransaction, PaymentStatus, WebhookEvent
from scheduling.models import BookingStatus
from tests.helpers import csrf_token, log_in
from tests.payouts.support import (
    balance,
    held_booking,
    lapse_hold,
    ledger_sums,
    load_booking,
    load_payment,
    setup_held,
)
from tests.scheduling.bookings_support import bookable_tutor, next_hour, student
from tests.scheduling.test_bookings_pages import book, slug_of

PASSWORD = "correct horse battery"


async def _pay_start(client, booking_id):
    token = await csrf_token(client, "/payments")
    return await client.post(f"/pay/{booking_id}", data={"_csrf_token": token}, follow_redirects=False)


async def _offline_pay(client, url, outcome="succeed"):
    page = await client.get(url)
    assert page.status_code == 200
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    return await client.post(url, data={"_csrf_token": token, "outcome": outcome}, follow_redirects=False)


async def test_offline_checkout_confirms_the_booking_through_the_event(client, drain_jobs):
    tutor, learner, booking = await setup_held()
    await log_in(client, learner.email, PASSWORD)
    started = await _pay_start(client, booking.id)
    assert started.status_code == 303
    url = started.headers["location"]
    assert url.startswith("/pay/offline/cs_test_")
    page = await client.get(url)
    assert "TEST MODE" in page.text
    assert "45.00" in page.text

    # The success page before any event: informs, confirms nothing.
    before = await client.get(f"/pay/{booking.id}/success")
    assert before.status_code == 200
    assert (await load_booking(booking.id)).status == BookingStatus.held

    paid = await _offline_pay(client, url)
    assert paid.headers["location"] == f"/pay/{booking.id}/success"
    drain_jobs()
    confirmed = await load_booking(booking.id)
    assert confirmed.status == BookingStatus.confirmed
    payment = await load_payment(booking.id)
    assert payment.status == PaymentStatus.paid
    assert payment.paid_amount == 4500 and payment.fee_amount == 675
    assert await balance(ledger.CASH) == 4500
    assert await balance(ledger.tutor_payable(tutor.id)) == -3825
    assert await balance(ledger.REVENUE) == -675
    assert await ledger_sums() == {"EUR": 0}
    success = await client.get(f"/pay/{booking.id}/success")
    assert "your lesson is confirmed" in success.text
    async with session_factory()() as session:
        events = (await session.execute(select(WebhookEvent))).scalars().all()
    assert [e.type for e in events] == ["checkout.session.completed"]
    assert events[0].status == "processed"


async def test_double_click_on_pay_makes_one_session(client):
    _tutor, learner, booking = await setup_held()
    await log_in(client, learner.email, PASSWORD)
    first = await _pay_start(client, booking.id)
    second = await _pay_start(client, booking.id)
    assert first.headers["location"] == second.headers["location"]
    async with session_factory()() as session:
        from payouts.models import OfflineObject

        count = await session.scalar(select(func.count()).select_from(OfflineObject))
    assert count == 1


async def test_a_tutor_without_payouts_cannot_take_bookings(client):
    tutor = await bookable_tutor(payouts=False)  # no payout account
    learner = await student()
    with pytest.raises(Conflict) as refused:
        await held_booking(tutor, learner)
    assert refused.value.status_code == 409
    assert "bookings open once their payouts are set up" in refused.value.message
    # The booking page and the profile say so too.
    slug = await slug_of(tutor)
    await log_in(client, learner.email, PASSWORD)
    start = next_hour(2, 10).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = await book(client, slug, start=start)
    assert response.status_code == 409
    assert "bookings open once their payouts are set up" in response.text
    confirm = await client.get(f"/book/{slug}", params={"start": start, "duration": "60"})
    assert confirm.status_code == 409 and "bookings open once their payouts are set up" in confirm.text
    profile = await client.get(f"/tutors/{slug}")
    assert 'id="bookings-closed"' in profile.text and "slot-link" not in profile.text


async def test_payouts_disabled_after_the_hold_refuse_the_checkout(client):
    from payouts.models import PayoutAccount

    tutor = await bookable_tutor()
    learner = await student()
    booking = await held_booking(tutor, learner)
    async with transaction() as session:
        account = await session.scalar(select(PayoutAccount).where(PayoutAccount.tutor_id == tutor.id))
        account.payouts_enabled = False
    await log_in(client, learner.email, PASSWORD)
    response = await _pay_start(client, booking.id)
    assert response.status_code == 409
    assert "cannot take paid bookings" in response.text
    assert await load_payment(booking.id) is None


async def test_someone_elses_booking_is_not_found(client):
    _tutor, _learner, booking = await setup_held()
    await student(email="other@example.com", name="Other")
    await log_in(client, "other@example.com", PASSWORD)
    response = await _pay_start(client, booking.id)
    assert response.status_code == 404
    assert (await client.get(f"/pay/{booking.id}/success")).status_code == 404


async def test_paying_after_the_hold_lapsed_and_the_slot_went_is_refunded_automatically(client, drain_jobs):
    tutor, learner, booking = await setup_held()
    await log_in(client, learner.email, PASSWORD)
    url = (await _pay_start(client, booking.id)).headers["location"]
    # The card is accepted at the last moment; the event is delivered only after the hold lapsed
    # and someone else took the slot.
    from payouts.providers import get_provider
    from payouts.services import _offline_event, event_receive

    provider = get_provider()
    data = await provider.pay_checkout(url.rsplit("/", 1)[1])
    await lapse_hold(booking.id)
    other = await student(email="other@example.com", name="Other")
    await held_booking(tutor, other)
    drain_jobs()
    await event_receive(endpoint="offline", event=_offline_event("checkout.session.completed", data))
    drain_jobs()
    payment = await load_payment(booking.id)
    assert payment.status == PaymentStatus.unapplied
    assert payment.refunded_amount == 4500
    assert (await load_booking(booking.id)).status != BookingStatus.confirmed
    assert await balance(ledger.UNAPPLIED) == 0
    assert await balance(ledger.CASH) == 0
    assert await ledger_sums() == {"EUR": 0}
    async with session_factory()() as session:
        kinds = sorted((await session.execute(select(LedgerTransaction.kind))).scalars())
    assert kinds == ["payment_unapplied", "refund_unapplied"]


async def test_a_failed_test_payment_leaves_the_hold_and_allows_a_new_attempt(client, drain_jobs):
    _tutor, learner, booking = await setup_held()
    await log_in(client, learner.email, PASSWORD)
    url = (await _pay_start(client, booking.id)).headers["location"]
    failed = await _offline_pay(client, url, outcome="fail")
    assert failed.headers["location"] == f"/pay/{booking.id}/cancel"
    drain_jobs()
    assert (await load_payment(booking.id)).status == PaymentStatus.failed
    assert (await load_booking(booking.id)).status == BookingStatus.held
    again = await _pay_start(client, booking.id)
    assert again.headers["location"] != url
    await _offline_pay(client, again.headers["location"])
    drain_jobs()
    assert (await load_booking(booking.id)).status == BookingStatus.confirmed
    assert (await load_payment(booking.id)).attempt == 2
