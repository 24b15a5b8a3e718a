"""Calendar settings in the browser: a private feed address to copy, the feed itself, revoking it,
and a tutor's external calendar refused when it points inside the network."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.support import assert_accessible, create_user, log_in, submit

pytestmark = pytest.mark.e2e


def test_a_student_creates_copies_and_revokes_the_private_calendar_address(page, student):
    assert log_in(page, student.email, student.password).ok
    page.goto("/account/settings")
    submit_link = page.locator("#calendar-settings-link")
    with page.expect_navigation():
        submit_link.click()
    assert page.url.endswith("/calendar")
    expect(page.locator("h1")).to_have_text("Calendar")
    assert page.locator('meta[name="robots"]').get_attribute("content") == "noindex, nofollow"
    assert_accessible(page)

    response = submit(page, page.locator('form[action="/calendar/feed"] button[type="submit"]'))
    assert response.ok
    expect(page.get_by_role("status").first).to_contain_text("Your private calendar address is ready.")
    address = page.get_by_label("Your private calendar address")
    first_url = address.input_value()
    assert "/calendar/feed/" in first_url and first_url.endswith(".ics")
    assert address.get_attribute("readonly") is not None
    assert_accessible(page)

    feed = page.context.request.get(first_url)
    assert feed.status == 200
    assert feed.headers["content-type"] == "text/calendar; charset=utf-8"
    assert feed.text().startswith("BEGIN:VCALENDAR")

    submit(page, page.locator('form[action="/calendar/feed/revoke"] button[type="submit"]'))
    expect(page.get_by_role("status").first).to_contain_text("The old calendar address no longer works.")
    second_url = page.get_by_label("Your private calendar address").input_value()
    assert second_url != first_url
    assert page.context.request.get(first_url).status == 404
    assert page.context.request.get(second_url).status == 200
    assert_accessible(page)


def test_a_tutor_cannot_connect_a_calendar_inside_the_network(page):
    tutor = create_user(prefix="tutor", role="tutor", name="Tara Tutor")
    assert log_in(page, tutor.email, tutor.password).ok
    page.goto("/calendar")
    expect(page.locator("#external-title")).to_be_visible()
    page.locator("#f-url").fill("http://127.0.0.1:8000/private.ics")
    response = submit(page, page.locator('form[action="/calendar/external"] button[type="submit"]'))
    assert response.status == 400
    expect(page.locator("#f-url-error")).to_contain_text("private or local network")
    expect(page.locator("#f-url")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-url")).to_have_value("http://127.0.0.1:8000/private.ics")
    assert page.locator(".review-items li").count() == 0  # nothing was saved
    assert_accessible(page)

    page.locator("#f-url").fill("ftp://calendar.example.com/cal.ics")
    response = submit(page, page.locator('form[action="/calendar/external"] button[type="submit"]'))
    assert response.status == 400
    expect(page.locator("#f-url-error")).to_contain_text("https://")
