"""The whole paid journey in the browser on the offline provider (TEST MODE): the tutor sets up
payouts; the student finds the tutor, opens the profile, reserves a slot, reviews the booking, pays
on the test checkout; the provider's event confirms the booking (mail); the lesson is completed,
the tutor's share transferred and shown on the earnings page; the student reviews and finds the
receipt. axe runs on every page of ours."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import select

from tests.e2e.support import PASSWORD, assert_accessible, log_in, run_sync, submit


def _setup() -> tuple[str, str, str]:
    async def go():
        from marketplace.db import session_factory
        from marketplace.tutors.models import TutorProfile
        from tests.helpers import make_user
        from tests.scheduling.bookings_support import bookable_tutor

        tag = uuid.uuid4().hex[:8]
        tutor = await bookable_tutor(email=f"tutor-{tag}@example.com", name="Clara Klavier", payouts=False)
        student = await make_user(email=f"student-{tag}@example.com", name="Sam Student", tz="Europe/Berlin")
        async with session_factory()() as session:
            slug = await session.scalar(select(TutorProfile.slug).where(TutorProfile.user_id == tutor.id))
        from search.sync import reindex_all

        await reindex_all()  # what the index job does after approval (its queue is this test process's)
        return tutor.email, student.email, slug

    return run_sync(go)


def _wait_for_text(page: Page, url: str, text: str, timeout: float = 15.0) -> None:
    """Reload until the text shows (events are applied by a job, a moment after the click)."""
    deadline = time.monotonic() + timeout
    while True:
        _run_jobs()
        page.goto(url)
        if text in page.content():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared on {url}")
        page.wait_for_timeout(300)


def _run_jobs() -> None:
    """With a real broker (CI on Redis) the live server runs no worker: work the queues from here.
    With the in-process default the server's own worker does it."""
    from marketplace import jobs

    if not jobs.is_in_process():
        jobs.in_process_worker.drain()


def _complete_and_transfer(booking_id: uuid.UUID) -> None:
    async def go():
        from marketplace.db import transaction
        from payouts.services import transfer_for_booking
        from scheduling import bookings
        from scheduling.models import Booking

        async with transaction() as session:
            booking = await session.get(Booking, booking_id)
            await bookings.booking_complete(session, booking_id=booking_id, at=booking.ends_at + timedelta(minutes=1))
        # What the periodic pass does once the review window (48 h) has passed.
        return await transfer_for_booking(booking_id=booking_id, now=booking.ends_at + timedelta(hours=49))

    assert run_sync(go)


def _outbox_subjects(email: str) -> list[str]:
    async def go():
        from tests.helpers import outbox

        return [m.subject for m in await outbox(email)]

    return run_sync(go)


def test_paid_journey_from_search_to_transfer_and_review(new_page) -> None:
    tutor_email, student_email, slug = _setup()

    # The tutor enables payouts (test-mode onboarding).
    tutor = new_page()
    log_in(tutor, tutor_email, PASSWORD)
    tutor.goto("/payouts")
    expect(tutor.locator("h1")).to_have_text("Payouts")
    expect(tutor.locator(".test-mode").first).to_contain_text("TEST MODE")
    assert_accessible(tutor)
    submit(tutor, tutor.get_by_role("button", name="Set up payouts"))
    expect(tutor.locator("h1")).to_contain_text("Test payout onboarding")
    assert_accessible(tutor)
    submit(tutor, tutor.get_by_role("button", name="Complete test onboarding"))
    _wait_for_text(tutor, "/payouts", "Payouts are enabled")

    # The student finds the tutor, opens the profile and reserves a slot.
    student = new_page()
    log_in(student, student_email, PASSWORD)
    student.goto("/tutors")
    student.locator(f'a[href="/tutors/{slug}"]').first.click()
    student.wait_for_url(re.compile(f"/tutors/{slug}$"))
    start = (time.time() // 3600 + 48) * 3600  # a round hour two days ahead, always free on the all-day calendar
    iso = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    student.goto(f"/book/{slug}?start={iso}&duration=60")
    submit(student, student.locator("#book-submit"))
    # One lesson goes straight to the payments review page.
    match = re.search(r"/pay/([0-9a-f-]{36})$", student.url)
    assert match, student.url
    booking_id = uuid.UUID(match.group(1))

    # Review and pay, on the offline provider's TEST MODE checkout.
    expect(student.locator("h1")).to_have_text("Review and pay")
    assert_accessible(student)
    submit(student, student.locator("#pay-button"))
    assert "/pay/offline/cs_test_" in student.url
    expect(student.locator("h1")).to_contain_text("TEST MODE")
    assert_accessible(student)
    submit(student, student.get_by_role("button", name=re.compile(r"^Pay .*\(test\)$")))
    assert student.url.endswith(f"/pay/{booking_id}/success")
    assert_accessible(student)
    _wait_for_text(student, f"/pay/{booking_id}/success", "your lesson is confirmed")
    _run_jobs()
    assert _outbox_subjects(student_email), "no confirmation mail"

    # The lesson takes place and is completed; the tutor's share is transferred.
    _complete_and_transfer(booking_id)
    tutor.goto("/payouts/earnings")
    expect(tutor.locator('[data-kind="available"]').first).to_contain_text("38.25")
    expect(tutor.locator('[data-kind="pending"]').first).to_contain_text("0.00")
    assert_accessible(tutor)

    # The student reviews the lesson and finds the receipt.
    student.goto(f"/lessons/{booking_id}/review")
    student.locator("#f-rating-5").check()
    student.locator("#f-text").fill("Clara explained voicings clearly and patiently. Great lesson!")
    submit(student, student.get_by_role("button", name="Publish review"))
    student.goto("/payments")
    assert_accessible(student)
    student.get_by_role("link", name="Receipt").first.click()
    expect(student.locator("h1")).to_have_text("Receipt")
    expect(student.locator(".receipt")).to_contain_text("45.00")
    assert_accessible(student)


def _paid_completed_lesson(student_email: str, tutor_email: str) -> uuid.UUID:
    async def go():
        from marketplace.accounts.models import User
        from marketplace.db import session_factory, transaction
        from payouts.models import WebhookEvent
        from payouts.services import checkout_start, event_process, offline_checkout_pay
        from scheduling import bookings
        from tests.payouts.support import enable_payouts, held_booking

        async with session_factory()() as session:
            student = await session.scalar(select(User).where(User.email == student_email))
            tutor = await session.scalar(select(User).where(User.email == tutor_email))
        await enable_payouts(tutor)
        booking = await held_booking(tutor, student)
        url = await checkout_start(booking_id=booking.id, student=student)
        await offline_checkout_pay(session_id=url.rsplit("/", 1)[1], student=student)
        async with session_factory()() as session:
            event_ids = list((await session.execute(select(WebhookEvent.event_id))).scalars())
        for event_id in event_ids:  # what the job does
            await event_process(event_id)
        async with transaction() as session:
            b = await bookings.booking_confirm_payment(session, booking_id=booking.id)
            await bookings.booking_complete(session, booking_id=b.id, at=b.ends_at + timedelta(minutes=1))
        return booking.id

    return run_sync(go)


def test_dispute_and_admin_finance_pages(new_page, admin) -> None:
    tutor_email, student_email, _slug = _setup()
    booking_id = _paid_completed_lesson(student_email, tutor_email)

    student = new_page()
    log_in(student, student_email, PASSWORD)
    student.goto(f"/pay/{booking_id}/dispute")
    expect(student.locator("h1")).to_have_text("Report a problem with a lesson")
    assert_accessible(student)
    student.locator("#f-reason").fill("The tutor did not show up for the first half of the lesson.")
    submit(student, student.get_by_role("button", name="Open a dispute"))
    assert student.url.endswith("/payments")
    assert_accessible(student)

    staff = new_page()
    log_in(staff, admin.email, admin.password)
    staff.goto("/admin/disputes")
    expect(staff.locator("blockquote")).to_contain_text("did not show up")
    assert_accessible(staff)
    staff.get_by_label("Partial refund", exact=True).check()
    staff.get_by_label("Partial refund amount (EUR)").fill("20.00")
    staff.get_by_label("Reason (kept in the audit log)").fill("Half the lesson was missed")
    submit(staff, staff.get_by_role("button", name="Resolve"))
    expect(staff.locator("main")).to_contain_text("No open disputes.")
    _run_jobs()
    staff.goto("/admin/finance")
    expect(staff.locator("h1")).to_have_text("Finance")
    expect(staff.locator("main")).to_contain_text("45.00")
    assert_accessible(staff)
