"""The account journey in a real browser, with an axe-core check on every page it visits."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.support import (
    PASSWORD,
    assert_accessible,
    link_from_admin_outbox,
    link_from_outbox_table,
    log_in,
    log_out,
    sign_up,
    submit,
    switch_language,
    unique_email,
)

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a brand new passphrase"


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def test_student_signs_up_confirms_email_switches_to_german_resets_password_and_logs_out(new_page, admin):
    email = unique_email("journey")
    student = new_page(timezone_id="America/New_York")

    # --- Sign up as a student from the home page -------------------------------------------
    student.goto("/")
    expect(student.locator("html")).to_have_attribute("lang", "en")
    assert_accessible(student)
    student.locator('a[href="/signup?role=student"]').click()
    expect(student).to_have_url(re.compile(r"/signup\?role=student$"))
    expect(student.locator("#f-timezone")).to_have_value("America/New_York")
    assert_accessible(student)

    response = sign_up(student, name="Jana Journey", email=email)
    assert response.ok
    assert path_of(student) == "/dashboard"
    expect(student.locator(".flashes")).to_contain_text("We sent you a link to confirm your email address.")
    expect(student.get_by_role("heading", level=1)).to_have_text("Hello, Jana Journey")
    expect(student.locator("main .alert-info")).to_contain_text("Please confirm your email address")
    expect(student.locator("main")).to_contain_text("(America/New_York)")  # the zone chosen at sign-up
    assert_accessible(student)

    # --- An admin reads the confirmation mail in the outbox; the student opens its link ---
    admin_page = new_page()
    log_in(admin_page, admin.email, admin.password)
    assert path_of(admin_page) == "/admin"
    verify_link = link_from_admin_outbox(admin_page, to=email, path="/verify-email")
    expect(admin_page.locator("ol.outbox .mail-subject").first).to_be_visible()
    assert_accessible(admin_page)

    student.goto(verify_link)
    assert path_of(student).startswith("/verify-email?token=")
    assert_accessible(student)
    response = submit(student, student.locator('form[action="/verify-email"] button[type="submit"]'))
    assert response.ok
    assert path_of(student) == "/dashboard"
    expect(student.locator(".flashes")).to_contain_text("Your email address is confirmed.")
    expect(student.locator("main .alert-info")).to_have_count(0)

    # --- Log out, and log in again --------------------------------------------------------
    log_out(student)
    assert path_of(student) == "/"
    expect(student.locator('header a[href="/login"]')).to_be_visible()
    response = log_in(student, email, PASSWORD)
    assert response.ok
    assert path_of(student) == "/dashboard"

    # --- Switch to German with the footer's language switcher -----------------------------
    student.goto("/account/settings")
    assert_accessible(student)
    response = switch_language(student, "de")
    assert response.ok
    assert path_of(student) == "/account/settings"  # the switcher returns to the same page
    expect(student.locator("html")).to_have_attribute("lang", "de")
    expect(student.get_by_role("heading", level=1)).to_have_text("Einstellungen")
    expect(student.locator("select#locale-switch")).to_have_value("de")
    assert_accessible(student)

    # --- Forgot the password: ask for a link from the log-in page (still in German) --------
    log_out(student)
    expect(student.locator("html")).to_have_attribute("lang", "de")
    student.goto("/login")
    assert_accessible(student)
    forgot = student.locator('main a[href="/forgot-password"]')
    expect(forgot).to_have_text("Passwort vergessen?")
    forgot.click()
    expect(student).to_have_url(re.compile(r"/forgot-password$"))
    assert_accessible(student)
    student.locator("#f-email").fill(email)
    response = submit(student, student.locator('form[action="/forgot-password"] button[type="submit"]'))
    assert response.ok
    expect(student.locator("main .alert-success[role=status]")).to_be_visible()
    assert_accessible(student)

    reset_link = link_from_outbox_table(to=email, path="/reset-password")
    student.goto(reset_link)
    expect(student.locator("html")).to_have_attribute("lang", "de")
    assert_accessible(student)
    student.locator("#f-password").fill(NEW_PASSWORD)
    student.locator("#f-password_confirm").fill(NEW_PASSWORD)
    response = submit(student, student.locator('form[action="/reset-password"] button[type="submit"]'))
    assert response.ok
    assert path_of(student) == "/login"
    expect(student.locator(".flashes")).to_contain_text("Ihr Passwort wurde geändert.")

    # --- The old password is refused, the new one works -----------------------------------
    response = log_in(student, email, PASSWORD)
    assert response.status == 422
    response = log_in(student, email, NEW_PASSWORD)
    assert response.ok
    assert path_of(student) == "/dashboard"
    expect(student.locator("html")).to_have_attribute("lang", "de")  # the account remembers German
    assert_accessible(student)

    # --- Log out --------------------------------------------------------------------------
    log_out(student)
    assert path_of(student) == "/"
    expect(student.locator('header form[action="/logout"]')).to_have_count(0)
    student.goto("/dashboard")
    assert path_of(student) == "/login?next=/dashboard"
