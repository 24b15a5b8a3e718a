"""Form behaviour in the browser: log-in errors, CSRF protection, time-zone detection."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.support import assert_accessible, log_in, submit

pytestmark = pytest.mark.e2e


def test_wrong_password_answers_422_with_an_error_message_and_keeps_the_email(page, student):
    response = log_in(page, student.email, "not the password")

    assert response.status == 422
    assert page.url.endswith("/login")
    expect(page.get_by_role("alert")).to_have_text("The email address or password is not correct.")
    expect(page.locator("#f-email")).to_have_value(student.email)
    expect(page.locator("#f-password")).to_have_value("")
    assert_accessible(page)


def test_csrf_protected_form_works_with_its_token_and_refuses_a_forged_one(page, student):
    page.goto("/login")
    token = page.locator('form[action="/login"] input[name="_csrf_token"]')
    assert token.get_attribute("value"), "the log-in form carries no CSRF token"

    token.evaluate("input => { input.value = 'forged-token' }")
    page.locator("#f-email").fill(student.email)
    page.locator("#f-password").fill(student.password)
    response = submit(page, page.locator('form[action="/login"] button[type="submit"]'))
    assert response.status == 403
    expect(page.locator("main")).to_contain_text("Your form expired or was sent from another site.")
    assert_accessible(page)

    response = log_in(page, student.email, student.password)  # a freshly loaded form
    assert response.ok
    assert page.url.endswith("/dashboard")


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_signup_preselects_the_time_zone_the_browser_reports(new_page, zone):
    page = new_page(timezone_id=zone)
    page.goto("/signup")

    expect(page.locator("select#f-timezone")).to_have_value(zone)
    # app.js also remembers the zone for signed-out visitors with a CSRF-protected fetch.
    page.wait_for_function("() => document.cookie.includes('cadenza_tz=')")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert cookies["cadenza_tz"].strip('"') == zone
