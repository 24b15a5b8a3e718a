"""The tutor's availability editor (/tutor/availability): weekly hours, booking rules, exceptions."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from marketplace import ports
from marketplace.db import transaction
from marketplace.tutors.models import ProfileStatus
from scheduling.editor import rule_message
from scheduling.models import Availability, AvailabilityOverride, BookingMode
from scheduling.rules import ERROR_CODES, RuleError
from tests.helpers import csrf_token, log_in, make_user
from tests.scheduling.test_slots_api import tutor_with_hours

PAGE = "/tutor/availability"
PASSWORD = "correct horse battery"

VALID: dict[str, Any] = {
    "zone": "Europe/Berlin",
    "d0_start": ["18:00"],
    "d0_end": ["21:00"],
    "d2_start": ["09:00", "17:30"],
    "d2_end": ["12:00", "20:00"],
    "d5_start": ["10:00"],
    "d5_end": ["24:00"],
    "buffer_before": "10",
    "buffer_after": "15",
    "notice_hours": "24",
    "horizon_days": "45",
    "max_per_day": "4",
    "booking_mode": "request",
    "free_cancel_hours": "48",
    "late_refund_percent": "50",
}


class RecordingIndexer:
    def __init__(self) -> None:
        self.scheduled: list[uuid.UUID] = []

    def schedule(self, session, profile_id: uuid.UUID) -> None:
        self.scheduled.append(profile_id)


@pytest.fixture
def indexer(monkeypatch: pytest.MonkeyPatch) -> RecordingIndexer:
    recorder = RecordingIndexer()
    monkeypatch.setattr(ports, "_search_indexer", recorder)
    return recorder


async def signed_in_tutor(client, *, zone: str = "America/Chicago", profile: bool = True):
    if profile:
        user, prof = await tutor_with_hours(
            email="tina@example.com", name="Tina Tutor", zone=zone, with_availability=False
        )
    else:
        user, prof = await make_user(email="tina@example.com", role="tutor", name="Tina Tutor", tz=zone), None
    await log_in(client, "tina@example.com", PASSWORD)
    return user, prof


async def post(client, path: str, data: dict[str, Any]):
    token = await csrf_token(client, PAGE)
    return await client.post(path, data={"_csrf_token": token, **data}, follow_redirects=False)


async def stored(user_id: uuid.UUID) -> Availability | None:
    async with transaction(write=False) as session:
        return (
            await session.execute(select(Availability).where(Availability.tutor_id == user_id))
        ).scalar_one_or_none()


async def overrides(user_id: uuid.UUID) -> list[AvailabilityOverride]:
    async with transaction(write=False) as session:
        rows = await session.execute(
            select(AvailabilityOverride)
            .where(AvailabilityOverride.tutor_id == user_id)
            .order_by(AvailabilityOverride.on_date)
        )
        return list(rows.scalars())


def today_in(zone: str) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


# ---- access ---------------------------------------------------------------------------------


async def test_visitors_log_in_first_and_students_are_refused(client) -> None:
    response = await client.get(PAGE, follow_redirects=False)
    assert response.status_code in (302, 303) and "/login" in response.headers["location"]
    await make_user(email="stu@example.com")
    await log_in(client, "stu@example.com", PASSWORD)
    assert (await client.get(PAGE)).status_code == 403


# ---- the page -------------------------------------------------------------------------------


async def test_first_visit_uses_the_tutors_zone_and_shows_an_accessible_grid(client) -> None:
    await signed_in_tutor(client, zone="America/Chicago")
    response = await client.get(PAGE)
    assert response.status_code == 200
    html = response.text
    assert '<option value="America/Chicago" selected>America/Chicago</option>' in html
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        assert f"<legend>{day}</legend>" in html
    # Every input has a label; the first row of Monday is there, empty.
    assert '<label for="f-d0-0-start">From<span class="visually-hidden"> (Monday, time 1)</span></label>' in html
    assert 'id="f-d0-0-start" name="d0_start" value=""' in html
    ids = re.findall(r'<input[^>]* id="([^"]+)"', html)
    labels = set(re.findall(r'<label for="([^"]+)"', html))
    assert ids and all(i in labels for i in ids)
    # Lesson lengths come from the pricing step, read-only, with a link there.
    assert "60 minutes: €40.60" in html
    assert 'href="/tutor/profile/pricing"' in html
    assert '<link rel="stylesheet" href="/static/css/scheduling.css">' in html
    assert "error-summary" not in html
    # Defaults: instant booking, free cancellation until 24 hours before, no refund later.
    assert 'name="booking_mode" value="instant" checked aria-describedby="f-booking_mode-0-hint"' in html
    assert 'name="free_cancel_hours" value="24" checked>' in html
    assert 'name="late_refund_percent" value="0" checked>' in html


async def test_the_dashboard_links_to_the_editor(client) -> None:
    await signed_in_tutor(client)
    assert f'href="{PAGE}"' in (await client.get("/tutor")).text


# ---- saving ---------------------------------------------------------------------------------


async def test_a_valid_save_stores_everything_and_reindexes_the_profile(client, indexer) -> None:
    user, profile = await signed_in_tutor(client)
    response = await post(client, PAGE, VALID)
    assert response.status_code == 303
    assert response.headers["location"] == PAGE
    avail = await stored(user.id)
    assert avail is not None
    assert avail.zone == "Europe/Berlin"
    assert avail.weekly == {
        "0": [["18:00", "21:00"]],
        "2": [["09:00", "12:00"], ["17:30", "20:00"]],
        "5": [["10:00", "24:00"]],
    }
    assert (avail.buffer_before, avail.buffer_after, avail.notice_minutes, avail.horizon_days) == (10, 15, 24 * 60, 45)
    assert avail.max_per_day == 4
    assert avail.booking_mode == BookingMode.request
    assert (avail.free_cancel_hours, avail.late_refund_percent) == (48, 50)
    assert indexer.scheduled == [profile.id]
    page = (await client.get(PAGE)).text
    assert "Your availability was saved." in page
    assert 'id="f-d2-1-start" name="d2_start" value="17:30"' in page
    assert 'id="f-d5-0-end" name="d5_end" value="24:00"' in page
    assert 'id="f-max_per_day" name="max_per_day" type="text" value="4"' in page


async def test_rows_are_kept_in_time_order_and_a_second_save_replaces_the_first(client, indexer) -> None:
    user, _profile = await signed_in_tutor(client)
    await post(client, PAGE, VALID)
    second = {**VALID, "d0_start": ["19:00", "08:00"], "d0_end": ["20:00", "09:30"], "d2_start": [""], "d2_end": [""]}
    second.pop("d5_start"), second.pop("d5_end")
    second["max_per_day"] = ""
    assert (await post(client, PAGE, second)).status_code == 303
    avail = await stored(user.id)
    assert avail.weekly == {"0": [["08:00", "09:30"], ["19:00", "20:00"]]}
    assert avail.max_per_day is None
    assert len(indexer.scheduled) == 2


async def test_a_tutor_without_a_profile_can_save_too(client, indexer) -> None:
    user, _ = await signed_in_tutor(client, profile=False)
    assert (await post(client, PAGE, VALID)).status_code == 303
    assert (await stored(user.id)) is not None
    assert indexer.scheduled == []


@pytest.mark.parametrize(
    ("change", "field_id", "message"),
    [
        ({"d0_start": ["18:00", "20:00"], "d0_end": ["21:00", "22:00"]}, "f-d0-1", "This time overlaps 18:00–21:00."),
        (
            {"d0_start": ["21:00"], "d0_end": ["18:00"]},
            "f-d0-0",
            "The end time must be after the start time (21:00–18:00).",
        ),
        ({"d0_start": ["18:00"], "d0_end": [""]}, "f-d0-0", "Enter both a start and an end time"),
        ({"d0_start": ["6pm"], "d0_end": ["9pm"]}, "f-d0-0", "Enter times as hours and minutes"),
        ({"d0_start": ["25:00"], "d0_end": ["26:00"]}, "f-d0-0", "Enter times as hours and minutes"),
        ({"zone": "Mars/Olympus_Mons"}, "f-zone", "“Mars/Olympus_Mons” is not a time zone we know."),
        ({"zone": "localtime"}, "f-zone", "is not a time zone we know"),
        ({"horizon_days": "91"}, "f-horizon_days", "Students can book at most 90 days ahead."),
        ({"horizon_days": "0"}, "f-horizon_days", "Enter at least 1."),
        ({"buffer_before": "-5"}, "f-buffer_before", "This cannot be negative."),
        ({"buffer_after": "999"}, "f-buffer_after", "At most 240 minutes."),
        ({"notice_hours": "soon"}, "f-notice_hours", "Enter a whole number, like 15."),
        ({"max_per_day": "0"}, "f-max_per_day", "Allow at least one lesson a day"),
        ({"booking_mode": "whenever"}, "f-booking_mode", "Choose instant booking or booking on request."),
        ({"free_cancel_hours": "6"}, "f-free_cancel_hours", "Choose one of the offered cancellation times."),
        ({"late_refund_percent": "100"}, "f-late_refund_percent", "Choose no refund or a 50% refund."),
    ],
)
async def test_bad_input_is_a_400_with_the_message_at_the_field_and_nothing_saved(
    client, indexer, change: dict[str, Any], field_id: str, message: str
) -> None:
    user, _profile = await signed_in_tutor(client)
    response = await post(client, PAGE, {**VALID, **change})
    assert response.status_code == 400
    html = response.text
    assert message in html
    assert f'<p class="error" id="{field_id}-error">' in html
    assert (
        f'aria-describedby="{field_id}-error"' in html
        or f'{field_id}-error"' in html.split(f'id="{field_id}-error"')[0]
    )
    # The error summary takes the focus and links to the field.
    assert 'id="error-summary" tabindex="-1" autofocus' in html
    assert re.search(rf'<li><a href="#{field_id}(-start|-0)?">[^<]*{re.escape(message[:20])}', html), html
    # What the tutor typed comes back.
    typed = change.get("zone") or change.get("horizon_days") or (change.get("d0_start") or [""])[0]
    if isinstance(typed, str) and typed and field_id != "f-zone":
        assert f'value="{typed}"' in html
    assert (await stored(user.id)) is None
    assert indexer.scheduled == []


async def test_a_refused_save_leaves_the_previous_availability_unchanged(client, indexer) -> None:
    user, _profile = await signed_in_tutor(client)
    await post(client, PAGE, VALID)
    before = await stored(user.id)
    response = await post(
        client, PAGE, {**VALID, "zone": "America/New_York", "buffer_before": "0", "horizon_days": "120"}
    )
    assert response.status_code == 400
    after = await stored(user.id)
    assert (after.zone, after.buffer_before, after.horizon_days, after.weekly) == (
        before.zone,
        before.buffer_before,
        before.horizon_days,
        before.weekly,
    )


async def test_add_and_remove_rows_without_javascript(client) -> None:
    user, _profile = await signed_in_tutor(client)
    added = await post(client, PAGE, {**VALID, "op": "add-0"})
    assert added.status_code == 200
    assert 'id="f-d0-1-start" name="d0_start" value="" inputmode="numeric"' in added.text
    assert 'value="18:00"' in added.text  # typed values kept
    assert "autofocus" in added.text.split('id="f-d0-1-start"')[1].split(">")[0]
    removed = await post(client, PAGE, {**VALID, "op": "remove-2-0"})
    assert removed.status_code == 200
    assert 'id="f-d2-0-start" name="d2_start" value="17:30"' in removed.text
    assert 'id="f-d2-1-start"' not in removed.text
    assert (await stored(user.id)) is None  # adding or removing a row saves nothing


async def test_weekly_hours_must_agree_with_upcoming_extra_hours(client, indexer) -> None:
    user, _profile = await signed_in_tutor(client)
    await post(client, PAGE, VALID)
    day = today_in("Europe/Berlin") + timedelta(days=14)
    day += timedelta(days=(0 - day.weekday()) % 7)  # a Monday
    response = await post(
        client, f"{PAGE}/overrides", {"on_date": day.isoformat(), "kind": "extra", "hours": "08:00-10:00"}
    )
    assert response.status_code == 303
    moved = {**VALID, "d0_start": ["09:00"], "d0_end": ["12:00"]}  # would overlap 08:00-10:00 on that Monday
    refused = await post(client, PAGE, moved)
    assert refused.status_code == 400
    assert f"Your extra hours on {day.isoformat()} overlap the new weekly hours." in refused.text
    assert (await stored(user.id)).weekly["0"] == [["18:00", "21:00"]]


# ---- exceptions (overrides) -----------------------------------------------------------------------


async def test_add_a_day_off_extra_hours_and_different_hours_then_delete_one(client, indexer) -> None:
    user, profile = await signed_in_tutor(client)
    await post(client, PAGE, VALID)
    base = today_in("Europe/Berlin") + timedelta(days=10)
    monday = base + timedelta(days=(0 - base.weekday()) % 7)
    cases = [
        ({"on_date": monday.isoformat(), "kind": "off", "note": "Holiday"}, [], True),
        (
            {"on_date": (monday + timedelta(days=1)).isoformat(), "kind": "extra", "hours": "10:00-12:00"},
            [["10:00", "12:00"]],
            False,
        ),
        (
            {
                "on_date": (monday + timedelta(days=2)).isoformat(),
                "kind": "replace",
                "hours": "08:00-09:00, 14:00-16:30",
            },
            [["08:00", "09:00"], ["14:00", "16:30"]],
            True,
        ),
    ]
    for data, _windows, _replace in cases:
        response = await post(client, f"{PAGE}/overrides", data)
        assert response.status_code == 303, response.text
    rows = await overrides(user.id)
    assert [(r.on_date, r.windows, r.replace) for r in rows] == [
        (monday + timedelta(days=i), windows, replace) for i, (_d, windows, replace) in enumerate(cases)
    ]
    assert rows[0].note == "Holiday"
    page = (await client.get(PAGE)).text
    assert "Day off (no lessons on this date)" in page and "Holiday" in page
    assert "08:00–09:00, 14:00–16:30" in page
    response = await post(client, f"{PAGE}/overrides/{rows[0].id}/delete", {})
    assert response.status_code == 303
    assert [r.on_date for r in await overrides(user.id)] == [monday + timedelta(days=1), monday + timedelta(days=2)]
    assert indexer.scheduled.count(profile.id) == 1 + 3 + 1


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"on_date": "PAST", "kind": "off"}, "on_date", "This date is in the past."),
        ({"on_date": "24.12.2026", "kind": "off"}, "on_date", "Enter a date like"),
        ({"on_date": "2026-02-30", "kind": "off"}, "on_date", "Enter a date like"),
        ({"on_date": "FAR", "kind": "off"}, "on_date", "Choose a date within the next year."),
        ({"on_date": "TAKEN", "kind": "off"}, "on_date", "You already have an exception on this date."),
        ({"on_date": "SOON", "kind": "extra", "hours": ""}, "hours", "Enter the hours, like"),
        ({"on_date": "SOON", "kind": "replace", "hours": "10-12"}, "hours", "Enter times as hours and minutes"),
        ({"on_date": "SOON", "kind": "replace", "hours": "12:00-10:00"}, "hours", "The end time must be after"),
        ({"on_date": "MONDAY", "kind": "extra", "hours": "20:00-22:00"}, "hours", "This time overlaps 18:00–21:00."),
        ({"on_date": "SOON", "kind": "sometimes"}, "kind", "Choose a day off, extra hours or different hours."),
        ({"on_date": "SOON", "kind": "off", "note": "x" * 121}, "note", "At most 120 characters"),
    ],
)
async def test_bad_exceptions_are_refused_with_a_400(client, data: dict[str, str], field: str, message: str) -> None:
    user, _profile = await signed_in_tutor(client)
    await post(client, PAGE, VALID)
    today = today_in("Europe/Berlin")
    taken = today + timedelta(days=5)
    await post(client, f"{PAGE}/overrides", {"on_date": taken.isoformat(), "kind": "off"})
    monday = today + timedelta(days=7 + (0 - today.weekday()) % 7)
    dates = {
        "PAST": today - timedelta(days=1),
        "FAR": today + timedelta(days=400),
        "TAKEN": taken,
        "SOON": today + timedelta(days=3),
        "MONDAY": monday,
    }
    sent = {**data, "on_date": dates[data["on_date"]].isoformat() if data["on_date"] in dates else data["on_date"]}
    response = await post(client, f"{PAGE}/overrides", sent)
    assert response.status_code == 400
    html = response.text
    assert message in html
    assert f'<p class="error" id="f-{field}-error">' in html
    assert f'value="{sent["on_date"]}"' in html  # the typed date comes back
    assert [o.on_date for o in await overrides(user.id)] == [taken]


async def test_a_tutor_cannot_delete_someone_elses_exception(client) -> None:
    other, _ = await tutor_with_hours(email="olga@example.com", name="Olga Other")
    async with transaction() as session:
        row = AvailabilityOverride(tutor_id=other.id, on_date=date(2030, 1, 1), windows=[], replace=True, note="")
        session.add(row)
    await signed_in_tutor(client)
    response = await post(client, f"{PAGE}/overrides/{row.id}/delete", {})
    assert response.status_code == 404
    assert len(await overrides(other.id)) == 1


async def test_saved_hours_show_on_the_public_profile(client) -> None:
    _user, profile = await signed_in_tutor(client)
    async with transaction() as session:
        from marketplace.tutors.models import TutorProfile

        (await session.get(TutorProfile, profile.id)).status = ProfileStatus.approved
    every_day = {f"d{d}_start": ["00:00"] for d in range(7)} | {f"d{d}_end": ["24:00"] for d in range(7)}
    data = {**VALID, **every_day, "notice_hours": "0", "max_per_day": "", "zone": "UTC"}
    for key in ("d2_start", "d2_end", "d5_start", "d5_end"):
        data[key] = every_day[key]
    assert (await post(client, PAGE, data)).status_code == 303
    html = (await client.get(f"/tutors/{profile.slug}", params={"tz": "UTC"})).text
    assert 'class="slot-link"' in html


def test_every_rule_error_code_has_its_own_message() -> None:
    messages = {code: rule_message(RuleError(code, "x", ("18:00-21:00", "20:00-22:00"))) for code in ERROR_CODES}
    fallback = rule_message(RuleError("no_such_code", "x"))
    assert all(message and message != fallback for message in messages.values())
    assert len(set(messages.values())) == len(messages)
