"""Availability in a real browser, with an axe-core check on every page and every swapped week.

A tutor in Berlin sets weekday evening hours (18:00-21:00) in the editor with the keyboard: a
first save with an inverted time is refused (the error summary takes the focus), the corrected
one is saved, and a day off is added. A visitor whose browser is in Tokyo opens the profile: the
week picker switches to the browser's zone by itself; the visitor chooses America/New_York and
pages through the next weeks (htmx), and every day shows exactly the expected New York times.

The server uses the real clock, so the expected times are computed here from the real current
instant with zoneinfo (from the tutor's wall-clock rules, independently of the slot engine):
whatever the season, the test checks the offset difference between Berlin and New York that
holds on each date (6 hours, or 5 in the weeks when only one of them is on summer time).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_time
from playwright.sync_api import Page, expect

from tests.e2e.support import PASSWORD, assert_accessible, log_in, run_sync
from tests.scheduling.test_slots_api import tutor_with_hours

pytestmark = pytest.mark.e2e

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
STARTS = ((18, 0), (18, 30), (19, 0), (19, 30), (20, 0))  # 60-minute lessons in 18:00-21:00
HORIZON_DAYS = 60
UNCERTAIN = timedelta(minutes=10)  # starts this close to "now" may be in or out by the time the page renders


def expected_week(first: date, days_off: set[date], now: datetime) -> dict[date, list[datetime]]:
    """New York days ``first`` .. ``first + 6`` -> the start instants (in New York) of the
    Monday-Friday 18:00-21:00 Berlin evenings, minus days off, between now and the horizon."""
    week: dict[date, list[datetime]] = {first + timedelta(days=i): [] for i in range(7)}
    for shift in range(-2, 9):
        day = first + timedelta(days=shift)  # a Berlin date
        if day.weekday() >= 5 or day in days_off:
            continue
        for hour, minute in STARTS:
            start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)
            if not now <= start <= now + timedelta(days=HORIZON_DAYS):
                continue
            local = start.astimezone(NEW_YORK)
            if local.date() in week:
                week[local.date()].append(local)
    return week


def shown_week(page: Page) -> dict[date, list[tuple[str, str, str]]]:
    """Day -> [(datetime attribute, visible label, booking link)] as the picker shows them."""
    out: dict[date, list[tuple[str, str, str]]] = {}
    for day in page.locator("li.week-day").all():
        key = date.fromisoformat(day.get_attribute("id").removeprefix("day-"))
        out[key] = [
            (
                link.locator("time").get_attribute("datetime"),
                link.locator("time").inner_text(),
                link.get_attribute("href"),
            )
            for link in day.locator("a.slot-link").all()
        ]
    return out


def check_week(page: Page, first: date, days_off: set[date], slug: str) -> int:
    now = datetime.now(UTC)
    expected = expected_week(first, days_off, now)
    shown = shown_week(page)
    assert sorted(shown) == sorted(expected), (sorted(shown), sorted(expected))
    count = 0
    for day, starts in expected.items():
        certain = [s for s in starts if abs(s.astimezone(UTC) - now) > UNCERTAIN]
        seen = [entry for entry in shown[day] if abs(datetime.fromisoformat(entry[0]) - now) > UNCERTAIN]
        assert [entry[0] for entry in seen] == [s.isoformat() for s in certain], day
        assert [entry[1] for entry in seen] == [
            format_time(s, "short", tzinfo=NEW_YORK, locale="en_US") for s in certain
        ]
        for (_attr, _label, href), start in zip(seen, certain, strict=True):
            utc = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert href == f"/book/{slug}?start={utc}&duration=60"
        # The offset difference between the tutor and the viewer on that date: 6 h, or 5 h while
        # only one of the two zones is on summer time.
        for start in certain:
            berlin = start.astimezone(BERLIN)
            difference = (berlin.utcoffset() - start.utcoffset()).total_seconds() / 3600
            assert difference in (5, 6)
            assert (berlin.hour, berlin.minute) in STARTS
        count += len(starts)
        if not starts:
            expect(page.locator(f"li#day-{day.isoformat()} .no-slots")).to_have_text("No times available")
    return count


def keyboard_window(page: Page, day: int, start: str, end: str) -> None:
    """Type one day's first window with the keyboard: start field, Tab, end field."""
    field = page.locator(f"#f-d{day}-0-start")
    field.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(start)
    page.keyboard.press("Tab")
    expect(page.locator(f"#f-d{day}-0-end")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(end)


def test_berlin_tutor_sets_evenings_and_a_new_york_visitor_pages_through_weeks(new_page) -> None:
    tag = uuid.uuid4().hex[:8]
    email = f"berta-{tag}@example.com"
    name = f"Berta Abend {tag}"
    _user, profile = run_sync(
        lambda: tutor_with_hours(email=email, name=name, zone="Europe/Berlin", with_availability=False)
    )
    slug = profile.slug

    # --- The tutor sets weekday evenings with the keyboard ---------------------------------------
    tutor = new_page()
    log_in(tutor, email, PASSWORD)
    tutor.goto("/tutor")
    tutor.get_by_role("link", name="Your availability").click()
    expect(tutor).to_have_url(re.compile(r"/tutor/availability$"))
    expect(tutor.get_by_role("heading", level=1)).to_have_text("Your availability")
    expect(tutor.locator("#f-zone")).to_have_value("Europe/Berlin")  # the tutor's own zone
    assert_accessible(tutor)

    keyboard_window(tutor, 0, "21:00", "18:00")  # Monday, inverted by mistake
    for day in range(1, 5):
        keyboard_window(tutor, day, "18:00", "21:00")
    tutor.locator("#f-notice_hours").focus()
    tutor.keyboard.press("Control+A")
    tutor.keyboard.type("0")
    with tutor.expect_navigation() as refused:
        tutor.keyboard.press("Enter")  # implicit submission: the form's first button saves
    assert refused.value.status == 400
    summary = tutor.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("Monday, time 1: The end time must be after the start time (21:00–18:00).")
    monday = tutor.locator("#f-d0-0-start")
    expect(monday).to_have_attribute("aria-invalid", "true")
    expect(monday).to_have_attribute("aria-describedby", "f-d0-0-error")
    expect(tutor.locator("#f-d1-0-start")).to_have_value("18:00")  # what was typed is still there
    expect(tutor.locator("#f-notice_hours")).to_have_value("0")
    assert_accessible(tutor)

    summary.get_by_role("link").first.click()  # the summary's link leads to the field
    expect(monday).to_be_focused()
    keyboard_window(tutor, 0, "18:00", "21:00")
    with tutor.expect_navigation() as saved:
        tutor.keyboard.press("Enter")
    assert saved.value.ok
    expect(tutor.locator(".flashes")).to_contain_text("Your availability was saved.")
    for day in range(5):
        expect(tutor.locator(f"#f-d{day}-0-start")).to_have_value("18:00")
        expect(tutor.locator(f"#f-d{day}-0-end")).to_have_value("21:00")
    expect(tutor.locator("#f-d5-0-start")).to_have_value("")
    assert_accessible(tutor)

    # A day off on a weekday in the second week (a date in Berlin).
    today_berlin = datetime.now(UTC).astimezone(BERLIN).date()
    day_off = today_berlin + timedelta(days=8)
    while day_off.weekday() >= 5:
        day_off += timedelta(days=1)
    tutor.locator("#f-on_date").fill(day_off.isoformat())
    expect(tutor.locator("#f-kind-0")).to_be_checked()  # "Day off" is the default
    tutor.locator("#f-note").focus()
    tutor.keyboard.type("Masterclass")
    with tutor.expect_navigation():
        tutor.keyboard.press("Enter")
    table = tutor.locator("table.override-table")
    expect(table).to_contain_text("Masterclass")
    expect(table.locator(f'time[datetime="{day_off.isoformat()}"]')).to_be_visible()
    assert_accessible(tutor)

    # --- A visitor from Tokyo chooses New York and pages through the weeks -----------------------
    visitor = new_page(timezone_id="Asia/Tokyo", locale="en-US")
    visitor.goto(f"/tutors/{slug}")
    zone = visitor.locator("#week-tz")
    expect(zone).to_have_value("Asia/Tokyo")  # the script switched to the browser's zone
    status = visitor.locator("#week-status")
    expect(status).to_contain_text("Asia/Tokyo")
    expect(status).to_have_attribute("aria-live", "polite")
    assert_accessible(visitor)

    zone.focus()
    zone.select_option("America/New_York")
    expect(status).to_contain_text("America/New York")
    expect(visitor.locator("#week-picker-body")).to_contain_text("Times in America/New York.")
    # The week keeps its first date when the zone changes: the Tokyo "today" (maybe a day ahead).
    now = datetime.now(UTC)
    first = date.fromisoformat(visitor.locator("li.week-day").first.get_attribute("id").removeprefix("day-"))
    assert first in (now.astimezone(NEW_YORK).date(), now.astimezone(ZoneInfo("Asia/Tokyo")).date())
    total = check_week(visitor, first, {day_off}, slug)
    if first == now.astimezone(NEW_YORK).date():
        expect(visitor.locator("#week-prev")).to_have_class("week-link-disabled")  # no earlier week
    else:  # one day back is today in New York
        expect(visitor.locator("a#week-prev")).to_have_attribute(
            "href", re.compile(rf"week={first - timedelta(days=1)}")
        )
    assert_accessible(visitor)

    for _week in range(3):
        first += timedelta(days=7)
        next_link = visitor.locator("a#week-next")
        next_link.focus()
        visitor.keyboard.press("Enter")
        expect(visitor).to_have_url(re.compile(rf"week={first.isoformat()}&tz=America%2FNew_York&duration=60"))
        expect(visitor.locator(f"li#day-{first.isoformat()}")).to_be_visible()
        expect(visitor.locator("#week-next")).to_be_focused()  # the focus stays on the link
        total += check_week(visitor, first, {day_off}, slug)
        expect(status).to_contain_text("times available")
        assert_accessible(visitor)
    assert total > 0

    # (The day off is in the second week: check_week found "No times available" there.)
    # The previous-week link goes back; a reload keeps the week and the zone.
    visitor.locator("a#week-prev").click()
    expect(visitor).to_have_url(re.compile(rf"week={(first - timedelta(days=7)).isoformat()}"))
    visitor.reload()
    expect(zone).to_have_value("America/New_York")
    check_week(visitor, first - timedelta(days=7), {day_off}, slug)
    assert_accessible(visitor)


def test_week_picker_works_without_javascript(new_page) -> None:
    tag = uuid.uuid4().hex[:8]
    _user, profile = run_sync(
        lambda: tutor_with_hours(email=f"no-js-{tag}@example.com", name=f"Nora Nojs {tag}", notice_minutes=0)
    )
    visitor = new_page(java_script_enabled=False, timezone_id="America/New_York")
    visitor.goto(f"/tutors/{profile.slug}")
    expect(visitor.locator("#week-tz")).to_have_value("UTC")  # no script: the server's default zone
    visitor.locator("#week-tz").select_option("America/New_York")
    visitor.get_by_role("button", name="Show times").click()
    expect(visitor).to_have_url(re.compile(r"tz=America%2FNew_York"))
    expect(visitor.locator("#week-tz")).to_have_value("America/New_York")
    axe_page = new_page()  # axe-core needs JavaScript: check the same URL in a page that runs it

    def check_accessible() -> None:
        axe_page.goto(visitor.url)
        expect(axe_page.locator("#week-tz")).to_have_value("America/New_York")
        assert_accessible(axe_page)

    check_accessible()
    # The tutor teaches every evening (the default of the builder): every day of the next weeks has
    # times, shown with New York's offset, and "Next week" is a plain link.
    first = datetime.now(UTC).astimezone(NEW_YORK).date()
    visitor.locator("a#week-next").click()
    expect(visitor).to_have_url(re.compile(rf"week={(first + timedelta(days=7)).isoformat()}"))
    for day in visitor.locator("li.week-day").all():
        times = [t.get_attribute("datetime") for t in day.locator("time").all()]
        assert len(times) == 5, times
        offsets = {t[-6:] for t in times}
        assert offsets <= {"-05:00", "-04:00"}
    check_accessible()
