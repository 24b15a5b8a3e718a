"""axe-core on every page and state of the account pages: no serious or critical violation.

The journey test checks the pages it passes through; these cover each page on its own, in both
languages, signed in, and with form errors shown.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.support import assert_accessible, create_user, log_in, submit

pytestmark = pytest.mark.e2e

PUBLIC_PAGES = {
    "/": 200,
    "/signup": 200,
    "/signup?role=tutor": 200,
    "/login": 200,
    "/forgot-password": 200,
    "/reset-password?token=some-token": 200,
    "/reset-password": 200,  # no token: the "invalid link" state
    "/verify-email?token=some-token": 200,
    "/tutors": 200,
    "/tutors?q=piano&format=online&sort=rating": 200,
    "/does-not-exist": 404,
}


@pytest.mark.parametrize("locale", ["en", "de"])
@pytest.mark.parametrize("path", list(PUBLIC_PAGES))
def test_public_page_has_no_serious_accessibility_violations(new_page, path, locale):
    page = new_page(locale=locale)
    response = page.goto(path)

    assert response.status == PUBLIC_PAGES[path]
    expect(page.locator("html")).to_have_attribute("lang", locale)
    assert_accessible(page)


def test_signed_in_student_pages_have_no_serious_accessibility_violations(new_page):
    unverified = create_user(prefix="unverified", verified=False, name="Uma Unverified")
    page = new_page()
    log_in(page, unverified.email, unverified.password)
    for path in ("/", "/dashboard", "/account/settings"):
        page.goto(path)
        assert_accessible(page)

    response = page.goto("/admin")  # not an admin: the 403 error page
    assert response.status == 403
    assert_accessible(page)


def test_admin_pages_with_mail_in_the_outbox_have_no_serious_accessibility_violations(new_page, admin):
    visitor = new_page()
    visitor.goto("/forgot-password")
    visitor.locator("#f-email").fill(admin.email)
    submit(visitor, visitor.locator('form[action="/forgot-password"] button[type="submit"]'))

    page = new_page()
    log_in(page, admin.email, admin.password)
    for path in ("/admin", "/admin/outbox"):
        page.goto(path)
        assert_accessible(page)
    expect(page.locator("ol.outbox > li")).to_have_count(1)


def test_forms_showing_errors_have_no_serious_accessibility_violations(page):
    page.goto("/signup")
    response = submit(page, page.locator('form[action="/signup"] button[type="submit"]'))  # everything empty
    assert response.status == 422
    expect(page.locator('[aria-invalid="true"]').first).to_be_visible()
    assert_accessible(page)

    page.goto("/forgot-password")
    page.locator("#f-email").fill("not-an-address")
    response = submit(page, page.locator('form[action="/forgot-password"] button[type="submit"]'))
    assert response.status == 422
    assert_accessible(page)

    page.goto("/reset-password?token=some-token")
    page.locator("#f-password").fill("one passphrase here")
    page.locator("#f-password_confirm").fill("another passphrase")
    response = submit(page, page.locator('form[action="/reset-password"] button[type="submit"]'))
    assert response.status == 422
    expect(page.locator("#f-password_confirm-error")).to_be_visible()
    assert_accessible(page)
