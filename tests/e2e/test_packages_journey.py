"""Lesson packages in the browser on the offline provider (TEST MODE): the tutor offers a 5-lesson
package; the student buys it from the profile on the test checkout, the provider's event makes the
credits available, and a lesson is booked and paid with a credit. axe runs on every page of ours."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

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
        tutor = await bookable_tutor(email=f"tutor-{tag}@example.com", name="Clara Klavier")
        student = await make_user(email=f"student-{tag}@example.com", name="Sam Student", tz="Europe/Berlin")
        async with session_factory()() as session:
            slug = await session.scalar(select(TutorProfile.slug).where(TutorProfile.user_id == tutor.id))
        return tutor.email, student.email, slug

    return run_sync(go)


def _run_jobs() -> None:
    from marketplace import jobs

    if not jobs.is_in_process():
        jobs.in_process_worker.drain()


def _wait_for(page: Page, url: str, selector: str, timeout: float = 15.0) -> None:
    """Reload until ``selector`` is on the page (events are applied by a job, after the click)."""
    deadline = time.monotonic() + timeout
    while True:
        _run_jobs()
        page.goto(url)
        if page.locator(selector).count():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector!r} never appeared on {url}")
        page.wait_for_timeout(300)


def _booking_status(booking_id: uuid.UUID) -> str:
    async def go():
        from marketplace.db import session_factory
        from scheduling.models import Booking

        async with session_factory()() as session:
            return (await session.get(Booking, booking_id)).status.value

    return run_sync(go)


def test_a_student_buys_a_five_lesson_package_and_books_a_lesson_with_a_credit(new_page) -> None:
    tutor_email, student_email, slug = _setup()

    # The tutor offers 5 lessons at 10 % off.
    tutor = new_page()
    log_in(tutor, tutor_email, PASSWORD)
    tutor.goto("/payouts/packages")
    expect(tutor.locator("h1")).to_have_text("Lesson packages")
    assert_accessible(tutor)
    tutor.locator("#f-enabled_5").check()
    tutor.locator("#f-discount_5").fill("10")
    submit(tutor, tutor.locator('form[action="/payouts/packages"] button[type="submit"]'))
    expect(tutor.locator('[data-package-price="5"]')).to_contain_text("202.50")
    assert_accessible(tutor)

    # The student finds the package on the profile and buys it on the TEST MODE checkout.
    student = new_page()
    log_in(student, student_email, PASSWORD)
    student.goto(f"/tutors/{slug}")
    offer = student.locator('#packages [data-package="5"]')
    expect(offer).to_contain_text("202.50")
    assert_accessible(student)
    submit(student, offer.locator('form[action="/payments/packages/buy"] button'))
    assert "/pay/offline/cs_test_" in student.url, student.url
    expect(student.locator("h1")).to_contain_text("TEST MODE")
    assert_accessible(student)
    submit(student, student.locator('form[action^="/pay/offline/"] button[type="submit"]'))
    match = re.search(r"/payments/packages/([0-9a-f-]{36})/success$", student.url)
    assert match, student.url
    assert_accessible(student)
    _wait_for(student, student.url, '[data-package-status="active"]')
    _wait_for(student, "/payments/packages", '[data-credits="5"]')
    assert_accessible(student)

    # A 60-minute lesson, paid with a credit.
    start = (time.time() // 3600 + 48) * 3600  # a round hour two days ahead, free on the all-day calendar
    iso = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    student.goto(f"/book/{slug}?start={iso}&duration=60")
    assert_accessible(student)
    submit(student, student.locator("#book-submit"))
    match = re.search(r"/pay/([0-9a-f-]{36})$", student.url)
    assert match, student.url
    booking_id = uuid.UUID(match.group(1))
    expect(student.locator("#credit-button")).to_contain_text("Use a package credit (5 left)")
    assert_accessible(student)
    submit(student, student.locator("#credit-button"))
    assert student.url.endswith(f"/lessons/{booking_id}"), student.url
    expect(student.locator("main")).to_contain_text("Confirmed")
    assert_accessible(student)
    assert _booking_status(booking_id) == "confirmed"
    student.goto("/payments/packages")
    expect(student.locator("[data-credits]").first).to_have_attribute("data-credits", "4")
    assert_accessible(student)
