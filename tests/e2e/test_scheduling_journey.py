"""The scheduling journey of March 2026 in a real browser, with an axe-core check on every page.

A tutor in Berlin sets weekday evenings (18:00-21:00) and a cancellation policy in the editor; a
student in New York pages through every week of March 2026 on the profile and sees those evenings
at the right New York time: 12:00 until the US changes its clocks (2026-03-08), 13:00 while only
New York is on summer time, 12:00 again once the EU changes too (2026-03-29). The student books a
Wednesday of mid-March, pays on the offline provider's TEST MODE checkout, gets a mail with an
invitation (.ics, METHOD:REQUEST), sees the lesson in the private calendar feed, moves it (the feed
shows the new time with a higher SEQUENCE) and cancels it with the refund the policy promises (the
feed shows it cancelled, a mail carries METHOD:CANCEL).

March 2026 is in the past of the real clock, so this test runs its own live server whose clock
starts at ``TRAVEL`` and ticks (CADENZA_TEST_TRAVEL, see tests/e2e/server.py), on the same
database as the other browser tests. The browser runs in real time: its scripts only detect the
zone. The expected New York times are computed from the tutor's Berlin wall clock with zoneinfo,
and a few are written out literally.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_datetime, format_time
from babel.numbers import format_currency
from icalendar import Calendar
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import page_factory
from tests.e2e.server import TRAVEL_ENV, LiveServer, start_server
from tests.e2e.support import PASSWORD, assert_accessible, create_user, log_in, run_sync, submit
from tests.scheduling.test_slots_api import tutor_with_hours

pytestmark = pytest.mark.e2e

TRAVEL = datetime(2026, 2, 27, 12, 0, tzinfo=UTC)  # a Friday; the server's clock starts here
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
STARTS = ((18, 0), (18, 30), (19, 0), (19, 30), (20, 0))  # 60-minute lessons in 18:00-21:00
PRICE = 4060  # tests.scheduling.test_slots_api.profile_doc: 60 minutes for 40.60 EUR
MARCH = {date(2026, 3, 1) + timedelta(days=i) for i in range(31)}
# One literal per phase (New York's Wednesday or Friday evening-in-Berlin, first time of the day).
LITERALS = {
    date(2026, 3, 4): ("2026-03-04T12:00:00-05:00", "12:00 PM"),  # both on winter time: 6 h
    date(2026, 3, 11): ("2026-03-11T13:00:00-04:00", "1:00 PM"),  # only New York on summer time: 5 h
    date(2026, 3, 27): ("2026-03-27T13:00:00-04:00", "1:00 PM"),  # still 5 h (the EU changes on Sunday)
    date(2026, 4, 1): ("2026-04-01T12:00:00-04:00", "12:00 PM"),  # both on summer time: 6 h again
}
BOOKED = datetime(2026, 3, 11, 17, 0, tzinfo=UTC)  # Wednesday, 18:00 in Berlin, 13:00 in New York
MOVED = datetime(2026, 3, 12, 18, 0, tzinfo=UTC)  # Thursday, 19:00 in Berlin, 14:00 in New York


# ---- the travelling server and pages on it ---------------------------------------------------


@dataclass
class Travel:
    server: LiveServer
    offset: float  # seconds from the real clock to the server's

    def now(self) -> datetime:
        """The server's clock (to within a second: read from its Date header)."""
        return datetime.fromtimestamp(time.time() + self.offset, UTC)


def server_clock_offset(url: str) -> float:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310 - our own server
        served = parsedate_to_datetime(response.headers["Date"]).timestamp() + 0.5  # whole seconds
    return served - time.time()


@pytest.fixture(scope="module")
def travel(migrated_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Travel]:
    """`marketplace run` on the same database (and Redis) as the other browser tests, its clock
    travelling from TRAVEL."""
    log_path = tmp_path_factory.mktemp("e2e-travel-server") / "server.log"
    server = start_server({**os.environ, TRAVEL_ENV: TRAVEL.isoformat()}, log_path)
    try:
        travel = Travel(server, server_clock_offset(server.url))
        assert abs(travel.now() - TRAVEL) < timedelta(minutes=2), travel.now()  # it did travel
        yield travel
    finally:
        server.stop()


@pytest.fixture
def travel_page(
    request: pytest.FixtureRequest, browser: Browser, travel: Travel, tmp_path_factory
) -> Iterator[Callable[..., Page]]:
    """``new_page`` for the travelling server."""
    with page_factory(request, browser, travel.server, tmp_path_factory) as make:
        yield make


@contextmanager
def worker_settings(base_url: str) -> Iterator[None]:
    """This process's settings as a worker of the server's would have them (its BASE_URL names
    the lesson pages and the calendar UIDs)."""
    from marketplace.settings import get_settings

    saved = os.environ["BASE_URL"]
    os.environ["BASE_URL"] = base_url
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ["BASE_URL"] = saved
        get_settings.cache_clear()


def run_jobs(travel: Travel) -> None:
    """With a real broker the live server runs no worker: the queues are worked from here, as a
    worker of that server would (on its clock, with its BASE_URL). With the in-process default the
    server's own worker does it."""
    import time_machine

    from marketplace import jobs

    if jobs.is_in_process():
        return
    with time_machine.travel(travel.now(), tick=True), worker_settings(travel.server.url):
        jobs.in_process_worker.drain()


def wait_for_text(page: Page, url: str, text: str, travel: Travel, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        run_jobs(travel)
        page.goto(url)
        if text in page.content():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared on {url}")
        page.wait_for_timeout(300)


# ---- expected times --------------------------------------------------------------------------


def expected_week(first: date) -> dict[date, list[datetime]]:
    """New York days ``first`` .. ``first + 6`` -> the starts (in New York) of the Monday-Friday
    18:00-21:00 Berlin evenings. All of them are bookable: after the notice, within the horizon."""
    week: dict[date, list[datetime]] = {first + timedelta(days=i): [] for i in range(7)}
    for shift in range(-1, 8):
        day = first + timedelta(days=shift)  # a Berlin date
        if day.weekday() >= 5:
            continue
        for hour, minute in STARTS:
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(NEW_YORK)
            if local.date() in week:
                week[local.date()].append(local)
    return week


def label(value: datetime) -> str:
    return format_time(value, "short", tzinfo=NEW_YORK, locale="en")


def full(value: datetime) -> str:
    """A lesson's start as the pages show it to the student (long form, New York)."""
    return format_datetime(value, "full", tzinfo=NEW_YORK, locale="en")


def plain(text: str) -> str:
    """Babel's times use a narrow no-break space before AM/PM."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def check_week(page: Page, first: date, slug: str) -> set[date]:
    shown: dict[date, list[tuple[str, str, str]]] = {}
    for day in page.locator("li.week-day").all():
        key = date.fromisoformat(day.get_attribute("id").removeprefix("day-"))
        shown[key] = [
            (
                link.locator("time").get_attribute("datetime"),
                link.locator("time").inner_text(),
                link.get_attribute("href"),
            )
            for link in day.locator("a.slot-link").all()
        ]
    expected = expected_week(first)
    assert sorted(shown) == sorted(expected)
    for day, starts in expected.items():
        assert [entry[0] for entry in shown[day]] == [s.isoformat() for s in starts], day
        assert [entry[1] for entry in shown[day]] == [label(s) for s in starts], day
        for (_attr, _label, href), start in zip(shown[day], starts, strict=True):
            utc = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert href == f"/book/{slug}?start={utc}&duration=60"
            berlin = start.astimezone(BERLIN)
            assert (berlin.hour, berlin.minute) in STARTS and berlin.weekday() < 5
        if not starts:
            expect(page.locator(f"li#day-{day.isoformat()} .no-slots")).to_have_text("No times available")
        if day in LITERALS:
            attribute, text = LITERALS[day]
            assert shown[day][0][0] == attribute
            assert plain(shown[day][0][1]) == text
    return set(shown)


# ---- mail and feed ---------------------------------------------------------------------------


def invitations(email: str, method: str) -> list[Calendar]:
    """The calendar attachments with ``method`` of the mails to ``email``, oldest first."""
    from tests.helpers import outbox

    found = []
    for message in run_sync(lambda: outbox(email)):
        for attachment in message.attachments or []:
            if attachment["content_type"].startswith(f"text/calendar; method={method};"):
                assert attachment["filename"] == ("invite.ics" if method == "REQUEST" else "cancel.ics")
                found.append(Calendar.from_ical(attachment["content"]))
    return found


def only_event(calendar: Calendar, uid: str):
    events = [e for e in calendar.walk("VEVENT") if str(e["UID"]) == uid]
    assert len(events) == 1, [str(e["UID"]) for e in calendar.walk("VEVENT")]
    return events[0]


def feed_event(page: Page, feed_url: str, uid: str):
    response = page.context.request.get(feed_url)
    assert response.status == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    return only_event(Calendar.from_ical(response.text()), uid)


# ---- the journey -----------------------------------------------------------------------------


def test_berlin_evenings_seen_from_new_york_through_march_booked_moved_and_cancelled(
    travel_page: Callable[..., Page], travel: Travel
) -> None:
    tag = uuid.uuid4().hex[:8]
    tutor_email = f"berta-{tag}@example.com"
    tutor_name = f"Berta Abend {tag}"
    _user, profile = run_sync(
        lambda: tutor_with_hours(email=tutor_email, name=tutor_name, zone="Europe/Berlin", with_availability=False)
    )
    slug = profile.slug
    student = create_user(prefix="student", name="Nia York", tz="America/New_York")
    price = format_currency(Decimal(PRICE).scaleb(-2), "EUR", locale="en")
    assert price == "€40.60"

    # --- The tutor in Berlin sets weekday evenings and the cancellation policy ------------------
    tutor = travel_page(timezone_id="Europe/Berlin")
    assert log_in(tutor, tutor_email, PASSWORD).ok
    assert_accessible(tutor)
    tutor.goto("/tutor/availability")
    expect(tutor.get_by_role("heading", level=1)).to_have_text("Your availability")
    expect(tutor.locator("#f-zone")).to_have_value("Europe/Berlin")
    assert_accessible(tutor)
    for day in range(7):
        start, end = ("18:00", "21:00") if day < 5 else ("", "")
        tutor.locator(f"#f-d{day}-0-start").fill(start)
        tutor.locator(f"#f-d{day}-0-end").fill(end)
    tutor.locator("#f-notice_hours").fill("1")
    tutor.locator("#f-horizon_days").fill("60")
    tutor.locator('input[name="free_cancel_hours"][value="48"]').check()
    tutor.locator('input[name="late_refund_percent"][value="50"]').check()
    assert submit(tutor, tutor.locator('button[name="op"][value=""]').first).ok
    expect(tutor.locator(".flashes")).to_contain_text("Your availability was saved.")
    for day in range(5):
        expect(tutor.locator(f"#f-d{day}-0-start")).to_have_value("18:00")
        expect(tutor.locator(f"#f-d{day}-0-end")).to_have_value("21:00")
    expect(tutor.locator("#f-d5-0-start")).to_have_value("")
    expect(tutor.locator("#f-notice_hours")).to_have_value("1")
    expect(tutor.locator('input[name="free_cancel_hours"][value="48"]')).to_be_checked()
    expect(tutor.locator('input[name="late_refund_percent"][value="50"]')).to_be_checked()
    assert_accessible(tutor)

    # --- The student in New York pages through every week of March ------------------------------
    page = travel_page(timezone_id="America/New_York")
    assert log_in(page, student.email, student.password).ok
    assert_accessible(page)
    page.goto(f"/tutors/{slug}")
    expect(page.locator("#week-tz")).to_have_value("America/New_York")
    expect(page.locator("#week-picker-body")).to_contain_text("Times in America/New York.")
    first = TRAVEL.astimezone(NEW_YORK).date()  # the server's "today" in New York: 2026-02-27
    expect(page.locator("li.week-day").first).to_have_attribute("id", f"day-{first.isoformat()}")
    seen = check_week(page, first, slug)
    assert_accessible(page)
    while first + timedelta(days=6) < max(MARCH):
        first += timedelta(days=7)
        page.locator("a#week-next").click()
        expect(page).to_have_url(re.compile(rf"week={first.isoformat()}&tz=America%2FNew_York&duration=60"))
        expect(page.locator("li.week-day").first).to_have_attribute("id", f"day-{first.isoformat()}")
        seen |= check_week(page, first, slug)
        assert_accessible(page)
    assert MARCH <= seen and set(LITERALS) <= seen  # every day of March, the weeks of both changes

    # Back to the week of 2026-03-06 (the US change) and book the Wednesday's first time.
    while first > date(2026, 3, 6):
        first -= timedelta(days=7)
        page.locator("a#week-prev").click()
        expect(page.locator("li.week-day").first).to_have_attribute("id", f"day-{first.isoformat()}")
    check_week(page, first, slug)
    slot = page.locator("li#day-2026-03-11 a.slot-link").first
    expect(slot.locator("time")).to_have_attribute("datetime", "2026-03-11T13:00:00-04:00")
    with page.expect_navigation():
        slot.click()
    expect(page).to_have_url(re.compile(rf"/book/{slug}\?start=2026-03-11T17:00:00Z&duration=60$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Book a lesson with {tutor_name}")
    starts = page.locator("#lesson-title + dl time")
    expect(starts).to_have_attribute("datetime", "2026-03-11T17:00:00Z")
    expect(starts).to_have_text(full(BOOKED))
    assert plain(full(BOOKED)).startswith("Wednesday, March 11, 2026, 1:00:00 PM")
    expect(page.locator("#book-price")).to_have_text(price)
    expect(page.locator("#book-policy")).to_have_text(
        "Free cancellation until 48 hours before the lesson. If you cancel later, you get 50% of the "
        "price back. If the tutor cancels, you get everything back."
    )
    assert_accessible(page)
    assert submit(page, page.locator("#book-submit")).ok

    # --- Pay on the offline provider's TEST MODE checkout ----------------------------------------
    match = re.search(r"/pay/([0-9a-f-]{36})$", page.url)
    assert match, page.url
    booking_id = uuid.UUID(match.group(1))
    expect(page.locator(".test-mode").first).to_contain_text("TEST MODE")
    assert_accessible(page)
    submit(page, page.locator("#pay-button"))
    expect(page).to_have_url(re.compile(r"/pay/offline/cs_test_"))
    assert_accessible(page)
    submit(page, page.get_by_role("button", name=re.compile(r"^Pay .*\(test\)$")))
    expect(page).to_have_url(re.compile(rf"/pay/{booking_id}/success$"))
    wait_for_text(page, page.url, "your lesson is confirmed", travel)
    assert_accessible(page)
    run_jobs(travel)

    page.get_by_role("link", name="Open the lesson").click()
    expect(page).to_have_url(re.compile(rf"/lessons/{booking_id}$"))
    lesson_url = page.url
    expect(page.locator("#lesson-status")).to_have_text("Confirmed")
    expect(page.locator("#lesson-facts time").first).to_have_attribute("datetime", BOOKED.isoformat())
    expect(page.locator("#lesson-facts time").first).to_have_text(full(BOOKED))
    assert_accessible(page)

    # --- The confirmation mail carries the invitation --------------------------------------------
    uid = f"booking-{booking_id}@127.0.0.1"
    requests = invitations(student.email, "REQUEST")
    assert len(requests) == 1
    assert str(requests[0]["METHOD"]) == "REQUEST"
    invite = only_event(requests[0], uid)
    assert invite.decoded("DTSTART") == BOOKED
    assert "DTSTART:20260311T170000Z" in requests[0].to_ical().decode()
    first_sequence = int(invite["SEQUENCE"])

    # --- The private calendar feed shows it -------------------------------------------------------
    page.goto("/calendar")
    expect(page.get_by_role("heading", level=1)).to_have_text("Calendar")
    assert_accessible(page)
    submit(page, page.locator('form[action="/calendar/feed"] button[type="submit"]'))
    feed_url = page.get_by_label("Your private calendar address").input_value()
    assert feed_url.startswith(f"{travel.server.url}/calendar/feed/") and feed_url.endswith(".ics")
    assert_accessible(page)
    event = feed_event(page, feed_url, uid)
    assert event.decoded("DTSTART") == BOOKED
    assert str(event["STATUS"]) == "CONFIRMED"
    assert int(event["SEQUENCE"]) == first_sequence

    # --- Move it to Thursday, 19:00 in Berlin (14:00 in New York) ----------------------------------
    page.goto(lesson_url)
    page.locator('#reschedule-days a[href$="?day=2026-03-12#reschedule"]').click()
    expect(page.locator("#reschedule-form legend")).to_contain_text("Thursday, March 12, 2026")
    choice = page.locator('#reschedule-form input[name="start"][value^="2026-03-12T18:00:00"]')
    expect(choice).to_have_count(1)
    expect(page.locator(f'label[for="{choice.get_attribute("id")}"]')).to_have_text(label(MOVED))
    assert_accessible(page)
    choice.check()
    submit(page, page.locator("#reschedule-submit"))
    expect(page.locator(".flashes")).to_contain_text("The lesson was moved.")
    expect(page.locator("#lesson-facts time").first).to_have_attribute("datetime", MOVED.isoformat())
    expect(page.locator("#lesson-facts time").first).to_have_text(full(MOVED))
    assert plain(full(MOVED)).startswith("Thursday, March 12, 2026, 2:00:00 PM")
    assert_accessible(page)
    event = feed_event(page, feed_url, uid)
    assert event.decoded("DTSTART") == MOVED
    assert event.decoded("DTEND") == MOVED + timedelta(hours=1)
    assert str(event["STATUS"]) == "CONFIRMED"
    moved_sequence = int(event["SEQUENCE"])
    assert moved_sequence > first_sequence
    run_jobs(travel)
    requests = [only_event(c, uid) for c in invitations(student.email, "REQUEST")]
    assert sorted(int(e["SEQUENCE"]) for e in requests) == [first_sequence, moved_sequence]
    moved_mail = max(requests, key=lambda e: int(e["SEQUENCE"]))
    assert moved_mail.decoded("DTSTART") == MOVED

    # --- Cancel it: more than 48 hours ahead, the full price comes back ----------------------------
    expect(page.locator("#cancel-refund")).to_have_text(f"If you cancel now, you get the full price back: {price}.")
    page.get_by_label("Reason (optional, shared with the other person)").fill("My concert moved.")
    submit(page, page.locator("#cancel-submit"))
    expect(page.locator(".flashes")).to_contain_text(f"The lesson is cancelled. Refund: {price}.")
    expect(page.locator("#lesson-status")).to_have_text("Cancelled")
    expect(page.locator("#lesson-refund")).to_have_text(price)
    assert_accessible(page)
    run_jobs(travel)
    event = feed_event(page, feed_url, uid)
    assert str(event["STATUS"]) == "CANCELLED"
    assert event.decoded("DTSTART") == MOVED
    assert int(event["SEQUENCE"]) >= moved_sequence
    cancellations = invitations(student.email, "CANCEL")
    assert len(cancellations) == 1
    assert str(cancellations[0]["METHOD"]) == "CANCEL"
    cancelled = only_event(cancellations[0], uid)
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert cancelled.decoded("DTSTART") == MOVED
    page.goto("/lessons")
    expect(page.locator("#past")).to_contain_text(f"Refund: {price}")
    assert_accessible(page)
