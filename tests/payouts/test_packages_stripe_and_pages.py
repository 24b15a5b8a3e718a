"""Lesson packages at Stripe's HTTP boundary (the checkout, the transfer of a credit-paid lesson and
the pro-rata refund checked against the documented parameters; fulfilment from a signed webhook)
and the pages: the tutor's offer form, the profile, the student's packages, paying with a credit,
and bad input answered with a clear 4xx or a message, never a 500."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction
from marketplace.tutors.models import TutorProfile
from payouts import ledger
from payouts.models import LessonPackage, PackageOffer, PackageStatus, TransferStatus
from payouts.packages import package_offers_set
from payouts.services import transfer_for_booking
from scheduling import bookings
from scheduling.models import BookingStatus
from tests.helpers import csrf_token, log_in
from tests.payouts.support import (
    balance,
    deliver,
    enable_payouts,
    event,
    held_booking,
    ledger_sums,
    load_booking,
    load_payment,
    paid_tutor,
)
from tests.scheduling.bookings_support import bookable_tutor, student

PASSWORD = "correct horse battery"


async def _offer(tutor: User, offers: dict[int, int]) -> None:
    async with transaction() as session:
        await package_offers_set(session, tutor=tutor, offers={n: (True, d) for n, d in offers.items()})


async def _packages_of(student_id) -> list[LessonPackage]:
    async with session_factory()() as session:
        return list(
            (await session.execute(select(LessonPackage).where(LessonPackage.student_id == student_id))).scalars()
        )


async def _post(client, path: str, data: dict[str, str] | None = None, page: str = "/payments"):
    token = await csrf_token(client, page)
    return await client.post(path, data={"_csrf_token": token, **(data or {})}, follow_redirects=False)


async def _flash(client, path: str) -> str:
    return (await client.get(path)).text


async def _buy(client, tutor: User, lessons: int):
    return await _post(client, "/payments/packages/buy", {"tutor_id": str(tutor.id), "lessons": str(lessons)})


# ---- Stripe at the HTTP boundary ----------------------------------------------------------------------------


async def test_a_package_at_stripe_checkout_webhook_transfer_and_pro_rata_refund(stripe_fake, client, drain_jobs):
    tutor = await bookable_tutor()
    await enable_payouts(tutor, provider="stripe", account_id="acct_1TutorStripe")
    await _offer(tutor, {5: 10})
    learner = await student()
    await log_in(client, learner.email, PASSWORD)
    response = await _buy(client, tutor, 5)
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    (package,) = await _packages_of(learner.id)
    req = stripe_fake.last("POST", "/v1/checkout/sessions")
    assert req.headers["idempotency-key"] == f"package_checkout:{package.id}:1"
    p = req.params
    assert p["mode"] == "payment"
    assert p["line_items[0][price_data][currency]"] == "eur"
    assert p["line_items[0][price_data][unit_amount]"] == "20250"  # 5 x 45.00 at 10 % off
    assert p["line_items[0][quantity]"] == "1"
    assert "5 lessons with Clara Klavier" in p["line_items[0][price_data][product_data][name]"]
    assert p["metadata[package_id]"] == str(package.id)
    assert "metadata[booking_id]" not in p
    assert p["client_reference_id"] == f"package_{package.id}"
    assert p["payment_intent_data[metadata][package_id]"] == str(package.id)
    assert p["payment_intent_data[transfer_group]"] == f"package_{package.id}"
    assert p["customer_email"] == learner.email
    assert p["success_url"].endswith(f"/payments/packages/{package.id}/success?session_id={{CHECKOUT_SESSION_ID}}")
    # A double click: the same session, no second request.
    again = await _buy(client, tutor, 5)
    assert again.headers["location"] == response.headers["location"]
    assert len([r for r in stripe_fake.requests if r.path == "/v1/checkout/sessions"]) == 1
    # The success page informs only.
    page = await client.get(f"/payments/packages/{package.id}/success")
    assert page.status_code == 200 and 'data-package-status="pending"' in page.text
    # Fulfilment from the signed webhook (sent twice: applied once).
    session_obj = {
        **stripe_fake.objects[package.checkout_session_id],
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_3PackagePaid",
    }
    completed = event("checkout.session.completed", session_obj)
    assert (await deliver(client, completed)).status_code == 200
    assert (await deliver(client, completed)).status_code == 200
    drain_jobs()
    (package,) = await _packages_of(learner.id)
    assert package.status == PackageStatus.active and package.credits_left == 5
    assert await balance(ledger.package_credit(package.id)) == -20250
    # A credit pays a lesson; after the review window the tutor's share is transferred, sourced
    # from the package's charge.
    booking = await held_booking(tutor, learner)
    pay_page = await client.get(f"/pay/{booking.id}")
    assert "Use a package credit (5 left)" in pay_page.text
    spent = await _post(client, f"/pay/{booking.id}/credit", page=f"/pay/{booking.id}")
    assert spent.status_code in (302, 303) and spent.headers["location"] == f"/lessons/{booking.id}"
    booking = await load_booking(booking.id)
    assert booking.status == BookingStatus.confirmed
    async with transaction() as session:
        await bookings.booking_complete(session, booking_id=booking.id, at=booking.ends_at)
    drain_jobs()
    await transfer_for_booking(booking_id=booking.id, now=booking.ends_at + timedelta(hours=49))
    transfer = stripe_fake.last("POST", "/v1/transfers")
    payment = await load_payment(booking.id)
    assert transfer.params["amount"] == str(4050 - payment.fee_amount)
    assert transfer.params["destination"] == "acct_1TutorStripe"
    assert transfer.params["transfer_group"] == f"booking_{booking.id}"
    assert transfer.params["source_transaction"] == "ch_3PackagePaid"
    assert transfer.headers["idempotency-key"] == f"transfer:{booking.id}"
    assert payment.transfer_status == TransferStatus.paid
    # The pro-rata refund of the four unused credits.
    confirm = await client.get(f"/payments/packages/{package.id}/refund")
    assert confirm.status_code == 200 and "162.00" in confirm.text
    refunded = await _post(client, f"/payments/packages/{package.id}/refund", page="/payments/packages")
    assert refunded.status_code in (302, 303)
    drain_jobs()
    refund = stripe_fake.last("POST", "/v1/refunds")
    assert refund.params["payment_intent"] == "pi_3PackagePaid"
    assert refund.params["amount"] == "16200"
    assert refund.params["metadata[package_id]"] == str(package.id)
    assert "metadata[booking_id]" not in refund.params
    assert refund.headers["idempotency-key"] == f"package_refund:{package.id}:16200"
    (package,) = await _packages_of(learner.id)
    assert package.status == PackageStatus.refunded and package.refunded_amount == 16200
    # Stripe's charge.refunded for the package's charge is noted, not applied twice.
    charge = {
        "id": "ch_3PackagePaid",
        "object": "charge",
        "payment_intent": "pi_3PackagePaid",
        "amount_refunded": 16200,
    }
    assert (await deliver(client, event("charge.refunded", charge))).status_code == 200
    drain_jobs()
    assert await balance(ledger.package_credit(package.id)) == 0
    assert await ledger_sums() == {"EUR": 0}


# ---- pages ----------------------------------------------------------------------------------------------------


async def test_the_tutor_sets_packages_and_bad_discounts_get_the_form_back(client):
    tutor = await paid_tutor()
    await log_in(client, tutor.email, PASSWORD)
    page = await client.get("/payouts/packages")
    assert page.status_code == 200
    bad = await _post(
        client, "/payouts/packages", {"enabled_5": "1", "discount_5": "80", "discount_10": "x"}, "/payouts/packages"
    )
    assert bad.status_code == 422
    assert "Enter a discount from 0 to 50 percent." in bad.text
    async with session_factory()() as session:
        assert (await session.execute(select(PackageOffer))).scalars().all() == []
    ok = await _post(
        client,
        "/payouts/packages",
        {"enabled_5": "1", "discount_5": "10", "enabled_10": "1", "discount_10": "20"},
        "/payouts/packages",
    )
    assert ok.status_code in (302, 303)
    page = await client.get("/payouts/packages")
    assert "€202.50" in page.text and "€360.00" in page.text  # 5 x 45 at 10 %, 10 x 45 at 20 %
    assert (await client.get("/payouts/earnings")).status_code == 200


async def test_the_profile_shows_packages_priced_in_the_viewers_locale(client):
    tutor = await paid_tutor()
    await _offer(tutor, {5: 10})
    async with session_factory()() as session:
        slug = await session.scalar(select(TutorProfile.slug).where(TutorProfile.user_id == tutor.id))
    html = (await client.get(f"/tutors/{slug}")).text
    assert 'id="packages"' in html and "€202.50" in html
    learner = await student()
    async with transaction() as session:
        (await session.get(User, learner.id)).locale = "de"
    await log_in(client, learner.email, PASSWORD)
    html = (await client.get(f"/tutors/{slug}")).text
    assert "202,50\xa0€" in html
    assert 'action="/payments/packages/buy"' in html


async def test_bad_package_requests_get_messages_not_500s(client, drain_jobs):
    tutor = await paid_tutor()
    learner = await student()
    closed = await bookable_tutor(email="closed@example.com", payouts=False)
    await _offer(closed, {5: 10})
    await log_in(client, tutor.email, PASSWORD)
    await _offer(tutor, {5: 10})
    own = await _buy(client, tutor, 5)
    assert own.status_code in (302, 303)
    assert "You cannot buy your own lesson package." in await _flash(client, own.headers["location"])
    await log_in(client, learner.email, PASSWORD)
    for data in (
        {"tutor_id": "not-a-uuid", "lessons": "5"},
        {"tutor_id": str(tutor.id), "lessons": "five"},
        {"tutor_id": str(tutor.id), "lessons": "7"},
    ):
        response = await _post(client, "/payments/packages/buy", data)
        assert response.status_code in (302, 303)
    nopay = await _buy(client, closed, 5)
    assert "This tutor cannot take paid bookings yet." in await _flash(client, nopay.headers["location"])
    assert await _packages_of(learner.id) == []
    # No credits: paying with one is refused with a message; the hold stays as it was.
    booking = await held_booking(tutor, learner)
    refused = await _post(client, f"/pay/{booking.id}/credit", page=f"/pay/{booking.id}")
    assert refused.headers["location"] == f"/pay/{booking.id}"
    assert "You have no package credits left with this tutor." in await _flash(client, refused.headers["location"])
    assert (await load_booking(booking.id)).status == BookingStatus.held
    # Someone else's package and nonsense ids.
    for path in ("/payments/packages/00000000-0000-0000-0000-000000000000/refund", "/payments/packages/x/refund"):
        assert (await client.get(path)).status_code in (404, 400)
    missing = await _post(client, "/payments/packages/00000000-0000-0000-0000-000000000000/refund")
    assert missing.status_code == 404
    assert (await client.get("/payments/packages")).status_code == 200


async def test_a_student_buys_on_the_offline_provider_and_refunds_twice_is_refused(client, drain_jobs):
    tutor = await paid_tutor()
    await _offer(tutor, {5: 10})
    learner = await student()
    await log_in(client, learner.email, PASSWORD)
    response = await _buy(client, tutor, 5)
    checkout = response.headers["location"]
    assert checkout.startswith("/pay/offline/")
    page = await client.get(checkout)
    assert page.status_code == 200 and "TEST MODE" in page.text
    paid = await _post(client, checkout, {"outcome": "succeed"}, page=checkout)
    drain_jobs()
    (package,) = await _packages_of(learner.id)
    assert paid.headers["location"] == f"/payments/packages/{package.id}/success"
    listing = (await client.get("/payments/packages")).text
    assert 'data-credits="5"' in listing and "Refund unused credits" in listing
    first = await _post(client, f"/payments/packages/{package.id}/refund", page="/payments/packages")
    drain_jobs()
    assert "We are refunding €202.50" in await _flash(client, first.headers["location"])
    second = await _post(client, f"/payments/packages/{package.id}/refund", page="/payments/packages")
    assert "This package has been refunded already." in await _flash(client, second.headers["location"])
    (package,) = await _packages_of(learner.id)
    assert package.refunded_amount == 20250
    assert await ledger_sums() == {"EUR": 0}
    assert re.search(r"Refunded: €202\.50", (await client.get("/payments/packages")).text)
    # The tutor sees the package sold on the earnings page.
    await log_in(client, tutor.email, PASSWORD)
    earnings = (await client.get("/payouts/earnings")).text
    assert "Lesson packages sold" in earnings and "Sam Student" in earnings and "€202.50" in earnings


async def test_visitors_get_a_log_in_link_to_buy_and_the_tutor_no_buy_button(client):
    tutor = await paid_tutor()
    await _offer(tutor, {5: 10, 10: 20})
    async with session_factory()() as session:
        slug = await session.scalar(select(TutorProfile.slug).where(TutorProfile.user_id == tutor.id))
    html = (await client.get(f"/tutors/{slug}")).text
    section = html[html.index('id="packages"') :]
    assert section.count(f'href="/login?next=/tutors/{slug}"') == 2  # one per package
    assert "Log in to buy" in section and 'action="/payments/packages/buy"' not in html
    # The link brings the visitor back to the profile, where the buy buttons are.
    learner = await student()
    login = (await client.get(f"/login?next=/tutors/{slug}")).text
    assert f'name="next" value="/tutors/{slug}"' in login
    response = await log_in(client, learner.email, PASSWORD, next_=f"/tutors/{slug}")
    assert response.url.path == f"/tutors/{slug}"  # back on the profile
    html = (await client.get(f"/tutors/{slug}")).text
    assert html.count('action="/payments/packages/buy"') == 2 and "Log in to buy" not in html
    # The tutor sees their packages as students do, without a way to buy them (refused server-side too).
    await log_in(client, tutor.email, PASSWORD)
    html = (await client.get(f"/tutors/{slug}")).text
    assert 'id="packages"' in html and "€202.50" in html
    assert 'action="/payments/packages/buy"' not in html and "Log in to buy" not in html
    assert 'href="/payouts/packages"' in html


async def test_history_and_receipt_say_a_lesson_was_paid_with_a_package_credit(client, drain_jobs):
    from payouts.packages import package_credit_spend
    from payouts.services import offline_package_pay

    tutor = await paid_tutor()
    await _offer(tutor, {5: 10})
    learner = await student()
    await log_in(client, learner.email, PASSWORD)
    checkout = (await _buy(client, tutor, 5)).headers["location"]
    await offline_package_pay(session_id=checkout.rsplit("/", 1)[1], student=learner)
    drain_jobs()
    (package,) = await _packages_of(learner.id)
    kept = await held_booking(tutor, learner, days=3)
    cancelled = await held_booking(tutor, learner, days=6)
    for booking in (kept, cancelled):
        await package_credit_spend(student=learner, booking_id=booking.id)
    drain_jobs()
    async with transaction() as session:
        await bookings.booking_cancel(session, actor=await session.get(User, learner.id), booking_id=cancelled.id)
    drain_jobs()
    value = 20250 // 5
    history = (await client.get("/payments")).text
    assert history.count("Paid with a package credit") == 2
    assert history.count(f'href="/payments/packages#package-{package.id}"') == 2
    assert history.count("€40.50") == 2  # the credit's value, not the tutor's €45.00
    assert "Credit returned to your package" in history
    assert f'id="package-{package.id}"' in (await client.get("/payments/packages")).text
    receipt = (await client.get(f"/payments/{(await load_payment(kept.id)).id}")).text
    assert "Paid with a package credit" in receipt and "5-lesson package with Clara Klavier, paid €202.50" in receipt
    assert "Value of the credit" in receipt and "€40.50" in receipt and "Amount paid" not in receipt
    assert "TEST MODE" in receipt  # the package was paid on the offline provider
    assert "Refunded" not in receipt and "Credit returned" not in receipt
    back = (await client.get(f"/payments/{(await load_payment(cancelled.id)).id}")).text
    assert "Credit returned to your package" in back and "Refunded" not in back
    assert (await load_payment(cancelled.id)).refunded_amount == value  # what a card receipt would show as money
