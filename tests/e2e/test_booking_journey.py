"""The booking journey in a real browser, with an axe-core check on every page.

A student opens a tutor's slot, reserves it, pays through the payments pages on the offline
provider's TEST MODE checkout, finds the lesson (with its notes, room and receipt) in My lessons,
moves it to another free time, cancels it and sees the refund the policy promised.
The tutor (approved profile, all-day calendar, 24 h free cancellation) is set up in the database.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import Account, assert_accessible, log_in, run_sync, submit
from tests.scheduling.bookings_support import bookable_tutor, next_hour

pytestmark = pytest.mark.e2e

START = next_hour(days=3, hour=9)


async def _tutor_slug() -> str:
    from sqlalchemy import select

    from marketplace.db import session_factory
    from marketplace.tutors.models import TutorProfile

    tutor = await bookable_tutor(email="clara.e2e@example.com", name="Clara Klavier")
    async with session_factory()() as session:
        return (await session.execute(select(TutorProfile.slug).where(TutorProfile.user_id == tutor.id))).scalar_one()


def _wait_for_text(page: Page, url: str, text: str, timeout: float = 15.0) -> None:
    """Reload until the text shows (the provider's event is applied by a job, a moment after the
    click; with a real broker the live server runs no worker, so the queues are worked from here)."""
    from marketplace import jobs

    deadline = time.monotonic() + timeout
    while True:
        if not jobs.is_in_process():
            jobs.in_process_worker.drain()
        page.goto(url)
        if text in page.content():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared on {url}")
        page.wait_for_timeout(300)


def test_student_books_pays_reschedules_and_cancels(page: Page, student: Account) -> None:
    slug = run_sync(_tutor_slug)
    log_in(page, student.email, student.password)

    # 1. The confirmation page the profile's week picker links to.
    iso = START.strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"/book/{slug}?start={iso}&duration=60")
    expect(page.get_by_role("heading", level=1)).to_have_text("Book a lesson with Clara Klavier")
    expect(page.locator("#book-price")).to_contain_text("€45.00")
    expect(page.locator("#book-policy")).to_contain_text("Free cancellation until 24 hours before the lesson.")
    assert_accessible(page)
    response = submit(page, page.locator("#book-submit"))
    assert response.ok

    # 2. Review and pay through the payments pages, on the offline provider's TEST MODE checkout.
    expect(page).to_have_url(re.compile(r"/pay/[0-9a-f-]+$"))
    expect(page.locator(".test-mode")).to_contain_text("TEST MODE")
    expect(page.locator("main")).to_contain_text("more minutes")
    assert_accessible(page)
    submit(page, page.locator("#pay-button"))
    expect(page).to_have_url(re.compile(r"/pay/offline/cs_test_"))
    assert_accessible(page)
    submit(page, page.get_by_role("button", name=re.compile(r"^Pay .*\(test\)$")))
    expect(page).to_have_url(re.compile(r"/pay/[0-9a-f-]+/success$"))
    _wait_for_text(page, page.url, "your lesson is confirmed")
    assert_accessible(page)

    # 3. The lesson page (notes loaded by htmx, the room, the receipt), then My lessons.
    page.get_by_role("link", name="Open the lesson").click()
    expect(page).to_have_url(re.compile(r"/lessons/[0-9a-f-]+$"))
    lesson_url = page.url
    expect(page.locator("#lesson-status")).to_have_text("Confirmed")
    expect(page.locator("#lesson-notes")).to_contain_text("Notes and homework")
    expect(page.get_by_role("link", name="Join the lesson room")).to_have_count(1)
    expect(page.locator("#receipt-link")).to_have_count(1)
    assert_accessible(page)
    page.goto("/lessons")
    upcoming = page.locator("#upcoming")
    expect(upcoming).to_contain_text("with Clara Klavier")
    expect(upcoming.get_by_role("link", name=re.compile("Join the lesson"))).to_have_count(1)
    assert_accessible(page)

    # 4. Move it to another free time of the same day.
    page.goto(lesson_url)
    slots = page.locator('#reschedule-form input[name="start"]')
    expect(slots.first).to_be_visible()
    new_value = slots.nth(3).get_attribute("value")
    slots.nth(3).check()
    submit(page, page.locator("#reschedule-submit"))
    expect(page.locator(".flashes")).to_contain_text("The lesson was moved.")
    expect(page.locator("#lesson-facts")).to_contain_text("1 time")
    assert new_value and page.locator(f'time[datetime="{new_value}"]').count() == 1
    assert_accessible(page)

    # 5. Cancel it: the refund is shown before and after.
    expect(page.locator("#cancel-refund")).to_have_text(
        re.compile(r"If you cancel now, you get the full price back: €45\.00\.")
    )
    page.get_by_label("Reason (optional, shared with the other person)").fill("I have to travel.")
    submit(page, page.locator("#cancel-submit"))
    expect(page.locator(".flashes")).to_contain_text("The lesson is cancelled. Refund: €45.00.")
    expect(page.locator("#lesson-status")).to_have_text("Cancelled")
    expect(page.locator("#lesson-refund")).to_have_text("€45.00")
    assert_accessible(page)
    page.goto("/lessons")
    expect(page.locator("#past")).to_contain_text("Refund: €45.00")
    assert_accessible(page)
