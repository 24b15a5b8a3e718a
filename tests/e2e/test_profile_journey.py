"""The tutor profile journey in a real browser, with an axe-core check on every distinct page.

A tutor signs up and builds a profile through every wizard step, an admin approves it, the tutor
changes the headline and the admin approves the change, a student saves the tutor, messages them
(contact details are masked) and reports the profile, the admin suspends it, and the audit log
shows what the admins did.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from tests.e2e.support import PASSWORD, assert_accessible, log_in, submit

pytestmark = pytest.mark.e2e

OLD_HEADLINE = "Jazz piano for adult beginners"
NEW_HEADLINE = "Jazz and blues piano, from your first chord"
BIO = "I have taught **jazz piano** for twelve years.\n\n- relaxed lessons\n- *real* songs from day one"
REPORT_REASON = "The profile asks students to pay outside the platform."
SUSPEND_REASON = "Asks for payments outside Cadenza (report from a student)."
CONTACT_MESSAGE = "Hello! Write to me at sam.private@example.org or call +34 612 345 678."
MASK = "[contact details hidden until your first paid lesson]"


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def photo_file(directory: Path) -> Path:
    """A 480x480 PNG portrait placeholder, drawn with Pillow."""
    image = Image.new("RGB", (480, 480), (236, 229, 214))
    draw = ImageDraw.Draw(image)
    draw.ellipse((140, 70, 340, 270), fill=(120, 84, 60))
    draw.rectangle((100, 300, 380, 480), fill=(40, 70, 120))
    path = directory / "portrait.png"
    image.save(path, format="PNG")
    return path


def save_step(page: Page, label: str = "Save and continue") -> None:
    response = submit(page, page.get_by_role("button", name=label, exact=True))
    assert response.ok, f"{path_of(page)} answered {response.status}"


def expect_step(page: Page, step: str, title: str) -> None:
    expect(page).to_have_url(re.compile(rf"/tutor/profile/{step}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.get_by_role("navigation", name="Profile steps").locator('[aria-current="step"]')).to_contain_text(title)


def flash(page: Page):
    return page.locator(".flashes")


def build_profile_in_the_wizard(tutor: Page, *, name: str, photo: Path) -> None:
    """Every step of /tutor/profile, from the overview to the review page."""
    tutor.goto("/tutor/profile")
    expect(tutor.get_by_role("heading", level=1)).to_have_text("Your tutor profile")
    expect(tutor.locator(".profile-status")).to_contain_text("Status: draft.")
    assert_accessible(tutor)
    tutor.get_by_role("link", name="Start setting up your profile").click()

    # 1. Name and headline
    expect_step(tutor, "basics", "Name and headline")
    expect(tutor.get_by_label("Your name")).to_have_value(name)  # taken from the account
    tutor.get_by_label("Headline").fill(OLD_HEADLINE)
    assert_accessible(tutor)
    save_step(tutor)

    # 2. Photo: a generated PNG
    expect_step(tutor, "photo", "Photo")
    assert_accessible(tutor)
    tutor.get_by_label("Choose a photo").set_input_files(photo)
    save_step(tutor, "Upload and continue")

    # 3. What you teach: the levels of an instrument appear once it is ticked
    expect_step(tutor, "teaching", "What you teach")
    tutor.get_by_label("Piano", exact=True).check()
    piano_levels = tutor.get_by_role("group", name="Levels you teach on Piano")
    expect(piano_levels).to_be_visible()
    piano_levels.get_by_label("Beginner").check()
    piano_levels.get_by_label("Intermediate").check()
    tutor.get_by_role("group", name="Genres (optional)").get_by_label("Jazz", exact=True).check()
    ages = tutor.get_by_role("group", name="Who you teach")
    ages.get_by_label("Teenagers").check()
    ages.get_by_label("Adults").check()
    assert_accessible(tutor)
    save_step(tutor)

    # 4. Languages and place: online and in person, in Madrid picked from the htmx suggestions
    expect_step(tutor, "place", "Languages and place")
    languages = tutor.get_by_role("group", name="Lesson languages")
    languages.get_by_label("English", exact=True).check()
    languages.get_by_label("Spanish", exact=True).check()
    tutor.get_by_label("Online, in a video lesson").check()
    tutor.get_by_label("In person", exact=True).check()
    tutor.get_by_label("City", exact=True).press_sequentially("Madrid", delay=30)
    suggestions = tutor.get_by_role("group", name="Pick your city")
    madrid = suggestions.get_by_label("Madrid, ES", exact=True)
    expect(madrid).to_be_visible()
    madrid.check()
    tutor.get_by_label("How far you travel to students, in km").fill("10")
    assert_accessible(tutor)
    save_step(tutor)

    # 5. Prices: EUR, a 60-minute lesson
    expect_step(tutor, "pricing", "Prices")
    tutor.get_by_label("Currency", exact=True).select_option("EUR")
    tutor.get_by_label("Offer 60-minute lessons").check()
    tutor.get_by_label("Price for 60 minutes").fill("45")
    assert_accessible(tutor)
    save_step(tutor)

    # 6. About you: a Markdown bio; this step leads to the review
    expect_step(tutor, "about", "About you")
    tutor.get_by_label("About you", exact=True).fill(BIO)
    tutor.get_by_label("Years of teaching experience (optional)").fill("12")
    assert_accessible(tutor)
    save_step(tutor, "Save and review")

    expect(tutor).to_have_url(re.compile(r"/tutor/profile/review$"))


def test_tutor_builds_profile_admin_moderates_student_saves_messages_and_reports(new_page, admin, student, tmp_path):
    tag = uuid.uuid4().hex[:8]
    tutor_name = f"Tina Tempo {tag}"
    tutor_email = f"tina-{tag}@example.com"
    slug = f"tina-tempo-{tag}"
    profile_url = f"/tutors/{slug}"

    # --- A tutor signs up ------------------------------------------------------------------
    tutor = new_page()
    tutor.goto("/signup?role=tutor")
    expect(tutor.get_by_label("teach music")).to_be_checked()
    assert_accessible(tutor)
    tutor.get_by_label("Your name").fill(tutor_name)
    tutor.get_by_label("Email address").fill(tutor_email)
    tutor.get_by_label("Password").fill(PASSWORD)
    response = submit(tutor, tutor.get_by_role("button", name="Create account"))
    assert response.ok
    assert path_of(tutor) == "/tutor"  # /dashboard sends tutors to their own home
    expect(tutor.get_by_role("heading", level=1)).to_have_text(f"Hello, {tutor_name}")
    assert_accessible(tutor)

    # --- ... builds the profile through every step, reviews and submits it -----------------
    build_profile_in_the_wizard(tutor, name=tutor_name, photo=photo_file(tmp_path))
    expect(tutor.get_by_role("heading", level=1)).to_have_text("Review your profile")
    review = tutor.locator("main")
    expect(review.get_by_role("img", name="Your profile photo")).to_be_visible()
    expect(review).to_contain_text(OLD_HEADLINE)
    expect(review).to_contain_text("Piano: Beginner, Intermediate")
    expect(review).to_contain_text("Jazz")
    expect(review).to_contain_text("Teenagers, Adults")
    expect(review).to_contain_text("English, Spanish")
    expect(review).to_contain_text("Online and in person")
    expect(review).to_contain_text("Madrid, ES")
    expect(review).to_contain_text("60 minutes: €45.00")
    expect(review.locator(".review-bio-html strong")).to_have_text("jazz piano")  # Markdown rendered
    expect(review.get_by_role("heading", name="Still missing")).to_have_count(0)
    assert_accessible(tutor)
    submit(tutor, tutor.get_by_role("button", name="Submit my profile for review"))
    assert path_of(tutor) == "/tutor/profile"
    expect(flash(tutor)).to_contain_text("Thank you! An admin will review your profile.")
    expect(tutor.locator(".profile-status")).to_contain_text("Status: waiting for review.")
    assert_accessible(tutor)

    # Not public yet
    visitor = new_page()
    assert visitor.goto(profile_url).status == 404

    # --- An admin approves it from the queue -----------------------------------------------
    moderator = new_page()
    log_in(moderator, admin.email, admin.password)
    moderator.goto("/admin/profiles")
    expect(moderator.get_by_role("heading", level=1)).to_have_text("Tutor profiles")
    queue_row = moderator.get_by_role("row").filter(has_text=tutor_email)
    expect(queue_row).to_contain_text(OLD_HEADLINE)
    assert_accessible(moderator)
    queue_row.get_by_role("link", name=tutor_name).click()
    expect(moderator).to_have_url(re.compile(r"/admin/profiles/[0-9a-f-]{36}$"))
    admin_profile_url = path_of(moderator)
    expect(moderator.get_by_role("heading", level=1)).to_have_text(f"Review profile: {tutor_name}")
    expect(moderator.get_by_role("heading", name="Submitted profile")).to_be_visible()
    assert_accessible(moderator)
    submit(moderator, moderator.get_by_role("button", name="Approve"))
    expect(flash(moderator)).to_contain_text("The profile was approved.")
    expect(moderator.get_by_role("button", name="Approve")).to_have_count(0)

    # --- The profile is public for an anonymous visitor ------------------------------------
    response = visitor.goto(profile_url)
    assert response.status == 200
    expect(visitor.get_by_role("heading", level=1)).to_have_text(tutor_name)
    expect(visitor.locator(".profile-header .lead")).to_have_text(OLD_HEADLINE)
    expect(visitor.get_by_role("img", name=f"Photo of {tutor_name}")).to_be_visible()
    expect(visitor.locator(".profile-bio strong")).to_have_text("jazz piano")
    expect(visitor.locator("main")).to_contain_text("Madrid, Spain")
    expect(visitor.locator(".price-list")).to_contain_text("60 minutes: €45.00")
    expect(visitor.get_by_role("link", name="Log in to save this tutor")).to_be_visible()
    assert_accessible(visitor)

    # --- The tutor edits the headline and resubmits ----------------------------------------
    tutor.goto("/tutor/profile/basics")
    tutor.get_by_label("Headline").fill(NEW_HEADLINE)
    save_step(tutor)
    tutor.goto("/tutor/profile/review")
    submit(tutor, tutor.get_by_role("button", name="Submit my profile for review"))
    expect(flash(tutor)).to_contain_text("Your changes were sent for review; your current profile stays visible.")
    expect(tutor.locator(".profile-status")).to_contain_text("Status: published, changes waiting for review.")
    assert_accessible(tutor)  # the overview of a published profile with pending changes

    # The admin sees the difference; the public still sees the approved headline
    moderator.goto("/admin/profiles")
    expect(moderator.get_by_role("row").filter(has_text=tutor_email)).to_contain_text("Changes to review")
    moderator.goto(admin_profile_url)
    expect(moderator.get_by_role("heading", name="Changes against the live profile")).to_be_visible()
    headline_row = moderator.locator("table.diff tbody tr").filter(
        has=moderator.get_by_role("rowheader", name="headline")
    )
    expect(headline_row.locator("del")).to_have_text(OLD_HEADLINE)
    expect(headline_row.locator("ins")).to_have_text(NEW_HEADLINE)
    expect(moderator.locator("table.diff tbody tr")).to_have_count(1)  # only the headline changed
    assert_accessible(moderator)

    visitor.reload()
    expect(visitor.locator(".profile-header .lead")).to_have_text(OLD_HEADLINE)

    submit(moderator, moderator.get_by_role("button", name="Approve"))
    expect(flash(moderator)).to_contain_text("The profile was approved.")
    visitor.reload()
    expect(visitor.locator(".profile-header .lead")).to_have_text(NEW_HEADLINE)

    # --- A student saves the tutor and finds them on /my/tutors ---------------------------
    learner = new_page()
    log_in(learner, student.email, student.password)
    learner.goto(profile_url)
    save = learner.get_by_role("button", name="Save to my tutors")
    expect(save).to_have_attribute("aria-pressed", "false")
    assert_accessible(learner)  # the profile as a signed-in student (save, message, report)
    save.click()  # htmx swaps the toggle in place
    expect(save).to_have_attribute("aria-pressed", "true")
    learner.get_by_role("link", name="My tutors").click()
    expect(learner).to_have_url(re.compile(r"/my/tutors$"))
    saved = learner.locator(".saved-tutors > li")
    expect(saved).to_have_count(1)
    expect(saved.get_by_role("link", name=tutor_name)).to_have_attribute("href", profile_url)
    expect(saved).to_contain_text(NEW_HEADLINE)
    assert_accessible(learner)

    # --- ... messages them: an email address and a phone number are masked ----------------
    learner.goto(profile_url)
    submit(learner, learner.get_by_role("button", name=f"Message {tutor_name}"))
    expect(learner).to_have_url(re.compile(r"/messages/[0-9a-f-]{36}$"))
    expect(learner.get_by_role("heading", level=1)).to_have_text(f"Conversation with {tutor_name}")
    learner.get_by_label("Your message").fill(CONTACT_MESSAGE)
    learner.get_by_role("button", name="Send").click()  # htmx swaps the conversation
    sent = learner.locator("#message-list .message-mine .message-body")
    expect(sent).to_have_count(1)
    expect(sent).to_contain_text("Hello! Write to me at")
    expect(sent).to_contain_text(MASK)
    expect(sent).not_to_contain_text("sam.private@example.org")
    expect(sent).not_to_contain_text("612 345 678")
    expect(learner.get_by_label("Your message")).to_have_value("")
    assert_accessible(learner)
    learner.reload()  # the stored message is masked on a full page too
    expect(sent).to_contain_text(MASK)
    expect(sent).not_to_contain_text("sam.private@example.org")

    # --- ... and reports the profile ---------------------------------------------------------
    learner.goto(profile_url)
    learner.get_by_text("Report this profile").click()  # opens the disclosure
    learner.get_by_label("What is wrong?").fill(REPORT_REASON)
    submit(learner, learner.get_by_role("button", name="Send report"))
    assert path_of(learner) == profile_url
    expect(flash(learner)).to_contain_text("Thank you for your report. Our team will look at it.")

    # --- The admin sees the report, opens the profile and suspends it -----------------------
    moderator.goto("/admin/reports")
    expect(moderator.get_by_role("heading", level=1)).to_have_text("Reports")
    report_row = moderator.get_by_role("row").filter(has_text=REPORT_REASON)
    expect(report_row).to_contain_text(f"Profile: {tutor_name}")
    expect(report_row).to_contain_text(student.email)
    expect(moderator.locator("main")).to_contain_text("1 open report")
    assert_accessible(moderator)
    report_row.get_by_role("link", name="Moderate profile").click()
    expect(moderator).to_have_url(re.compile(re.escape(admin_profile_url) + "$"))
    moderator.get_by_label("Reason for suspending").fill(SUSPEND_REASON)
    submit(moderator, moderator.get_by_role("button", name="Suspend"))
    expect(flash(moderator)).to_contain_text("The profile was suspended.")
    expect(moderator.locator("main")).to_contain_text(f"Suspended because: {SUSPEND_REASON}")
    expect(moderator.get_by_role("button", name="Reinstate")).to_be_visible()
    assert_accessible(moderator)  # the admin profile page of a suspended profile

    # ... and resolves the report
    moderator.goto("/admin/reports")
    report_row = moderator.get_by_role("row").filter(has_text=REPORT_REASON)
    report_row.get_by_label("Note (optional)").fill("Profile suspended.")
    submit(moderator, report_row.get_by_role("button", name="Resolve"))
    expect(flash(moderator)).to_contain_text("The report was resolved.")
    expect(report_row).to_contain_text("Resolved")
    expect(moderator.locator("main")).to_contain_text("0 open reports")

    # --- The public profile is gone: a localized "not found" page ---------------------------
    response = visitor.goto(profile_url)
    assert response.status == 404
    expect(visitor.get_by_role("heading", level=1)).to_have_text("Page not found")
    expect(visitor.locator("main")).to_contain_text("We could not find that tutor.")
    assert_accessible(visitor)
    german_visitor = new_page(locale="de-DE")
    assert german_visitor.goto(profile_url).status == 404
    expect(german_visitor.locator("html")).to_have_attribute("lang", "de")
    expect(german_visitor.get_by_role("heading", level=1)).to_have_text("Seite nicht gefunden")
    expect(german_visitor.locator("main")).to_contain_text("Wir konnten diese Lehrkraft nicht finden.")

    # The student's saved tutors no longer list a suspended profile
    learner.goto("/my/tutors")
    expect(learner.locator(".saved-tutors > li")).to_have_count(0)

    # --- The audit log lists what the admins did --------------------------------------------
    moderator.goto("/admin/audit")
    expect(moderator.get_by_role("heading", level=1)).to_have_text("Audit log")
    actions = moderator.locator("table.data-table tbody tr td:nth-child(3)")
    expect(actions.filter(has_text=re.compile(r"^profile\.approve$"))).to_have_count(2)
    expect(actions.filter(has_text=re.compile(r"^profile\.suspend$"))).to_have_count(1)
    expect(actions.filter(has_text=re.compile(r"^report\.resolve$"))).to_have_count(1)
    suspend_row = moderator.get_by_role("row").filter(has_text="profile.suspend")
    expect(suspend_row).to_contain_text(admin.email)
    expect(suspend_row).to_contain_text(SUSPEND_REASON)
    assert_accessible(moderator)
