"""Example tests for the slot engine (scheduling.slots): DST, zones, overrides, limits, validation."""

from __future__ import annotations

import itertools
import os
import time as time_module
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.rules import parse_window, parse_windows, validate_rules, validate_windows
from scheduling.slots import (
    MAX_HORIZON_DAYS,
    Interval,
    Override,
    RuleErrors,
    SlotQuery,
    WeeklyRules,
    Window,
    compute_slots,
    to_zone,
    validate_query,
)

MON_FRI = range(5)


# Pure logic, no I/O: this module does not need the database that the suite's autouse fixtures
# (tests/conftest.py) migrate and empty around every test, so it overrides them with no-ops.
@pytest.fixture(scope="session")
def migrated_database() -> str:
    return ""


@pytest.fixture
def clean_state() -> None:
    return None


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def windows(text: str) -> tuple[Window, ...]:
    return parse_windows(text)


def weekly(zone: str, text: str, weekdays: range | tuple[int, ...] = range(7)) -> WeeklyRules:
    return WeeklyRules(zone, {d: windows(text) for d in weekdays})


def query(rules: WeeklyRules, **kw: object) -> SlotQuery:
    defaults: dict[str, object] = {
        "duration": 60,
        "step": 30,
        "now": utc(2026, 1, 1),
        "viewer_zone": rules.zone,
    }
    defaults.update(kw)
    if "date_from" not in defaults:
        defaults["date_from"] = defaults["now"].date()  # type: ignore[attr-defined]
    if "date_to" not in defaults:
        defaults["date_to"] = defaults["date_from"] + timedelta(days=6)  # type: ignore[operator]
    return SlotQuery(rules=rules, **defaults)  # type: ignore[arg-type]


def starts(slots: list[Interval]) -> list[datetime]:
    return [s.start for s in slots]


def local_starts(slots: list[Interval], zone: str) -> list[str]:
    """Start times in ``zone`` as 'YYYY-MM-DD HH:MM+HH:MM' strings."""
    return [start.isoformat(sep=" ", timespec="minutes") for start, _ in to_zone(slots, zone)]


# --- Daylight saving time -------------------------------------------------------------------


def test_berlin_evening_seen_from_new_york_follows_both_dst_changes_in_march_2026() -> None:
    # US switches on 2026-03-08, the EU on 2026-03-29: for three weeks the gap is 5 hours, not 6.
    rules = weekly("Europe/Berlin", "18:00-21:00", MON_FRI)
    q = query(
        rules,
        step=60,
        now=utc(2026, 2, 27),
        viewer_zone="America/New_York",
        date_from=date(2026, 3, 1),
        date_to=date(2026, 3, 31),
    )
    by_date: dict[date, list[str]] = {}
    for start, end in to_zone(compute_slots(q), "America/New_York"):
        assert end - start == timedelta(hours=1)
        by_date.setdefault(start.date(), []).append(start.strftime("%H:%M%z"))

    expected: dict[date, list[str]] = {}
    for day in range(1, 32):
        d = date(2026, 3, day)
        if d.weekday() >= 5:
            continue
        if d <= date(2026, 3, 7):
            expected[d] = ["12:00-0500", "13:00-0500", "14:00-0500"]
        elif d <= date(2026, 3, 27):
            expected[d] = ["13:00-0400", "14:00-0400", "15:00-0400"]
        else:
            expected[d] = ["12:00-0400", "13:00-0400", "14:00-0400"]
    assert by_date == expected


def test_spring_forward_gap_offers_no_start_inside_it_and_a_window_across_it_is_shorter() -> None:
    # Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    sunday = date(2026, 3, 29)
    rules = WeeklyRules("Europe/Berlin", {6: windows("01:00-04:00")})
    q = query(rules, now=utc(2026, 3, 27), date_from=sunday, date_to=sunday)
    slots = compute_slots(q)
    # 01:00-04:00 is only 2 real hours that day: 00:00-02:00 UTC.
    assert local_starts(slots, "Europe/Berlin") == [
        "2026-03-29 01:00+01:00",
        "2026-03-29 01:30+01:00",  # runs across the jump: ends 03:30 CEST, 60 real minutes
        "2026-03-29 03:00+02:00",
    ]
    assert starts(slots) == [utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0)]
    assert all(s.end - s.start == timedelta(minutes=60) for s in slots)


def test_windows_inside_or_starting_in_the_spring_forward_gap() -> None:
    sunday = date(2026, 3, 29)
    only_gap = WeeklyRules("Europe/Berlin", {6: windows("02:00-03:00")})
    q = query(only_gap, duration=30, now=utc(2026, 3, 27), date_from=sunday, date_to=sunday)
    assert compute_slots(q) == []

    half_in_gap = WeeklyRules("Europe/Berlin", {6: windows("02:30-03:30")})  # 30 real minutes
    q = query(half_in_gap, duration=30, now=utc(2026, 3, 27), date_from=sunday, date_to=sunday)
    assert local_starts(compute_slots(q), "Europe/Berlin") == ["2026-03-29 03:00+02:00"]
    assert compute_slots(query(half_in_gap, duration=60, now=utc(2026, 3, 27), date_from=sunday, date_to=sunday)) == []


def test_fall_back_repeated_hour_in_berlin_is_offered_once_per_occurrence() -> None:
    # Europe/Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:00-03:00 happens twice.
    sunday = date(2026, 10, 25)
    rules = WeeklyRules("Europe/Berlin", {6: windows("00:00-04:00")})
    q = query(rules, step=60, now=utc(2026, 10, 20), date_from=sunday, date_to=sunday)
    slots = compute_slots(q)
    assert local_starts(slots, "Europe/Berlin") == [
        "2026-10-25 00:00+02:00",
        "2026-10-25 01:00+02:00",
        "2026-10-25 02:00+02:00",
        "2026-10-25 02:00+01:00",
        "2026-10-25 03:00+01:00",
    ]
    # Five real hours, back to back: distinct instants, no duplicates, no overlaps.
    assert starts(slots) == [utc(2026, 10, 24, 22) + timedelta(hours=h) for h in range(5)]
    assert all(a.end == b.start for a, b in itertools.pairwise(slots))
    shown = to_zone(slots, "Europe/Berlin")
    assert [s.fold for s, _ in shown] == [0, 0, 0, 1, 0]
    # The local values round-trip to the same instants (fold picks the right occurrence).
    assert [s.astimezone(UTC) for s, _ in shown] == starts(slots)


def test_fall_back_window_starting_inside_the_repeated_hour_excludes_wall_times_before_its_start() -> None:
    # 02:30-04:00 on 2026-10-25 in Berlin: 02:30-03:00 CEST, then 02:30-04:00 CET; 02:00-02:30 CET reads
    # outside the window and is not offered.
    sunday = date(2026, 10, 25)
    rules = WeeklyRules("Europe/Berlin", {6: windows("02:30-04:00")})
    q = query(rules, duration=30, now=utc(2026, 10, 20), date_from=sunday, date_to=sunday)
    assert local_starts(compute_slots(q), "Europe/Berlin") == [
        "2026-10-25 02:30+02:00",
        "2026-10-25 02:30+01:00",
        "2026-10-25 03:00+01:00",
        "2026-10-25 03:30+01:00",
    ]


def test_fall_back_repeated_hour_in_new_york() -> None:
    # America/New_York 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC).
    sunday = date(2026, 11, 1)
    rules = WeeklyRules("America/New_York", {6: windows("00:30-03:00")})
    q = query(rules, now=utc(2026, 10, 28), date_from=sunday, date_to=sunday)
    slots = compute_slots(q)
    assert local_starts(slots, "America/New_York") == [
        "2026-11-01 00:30-04:00",
        "2026-11-01 01:00-04:00",
        "2026-11-01 01:30-04:00",
        "2026-11-01 01:00-05:00",
        "2026-11-01 01:30-05:00",
        "2026-11-01 02:00-05:00",
    ]
    assert len(set(starts(slots))) == 6
    assert slots[-1].end == utc(2026, 11, 1, 8)  # 03:00 EST: 3.5 real hours after 00:30 EDT


def test_lord_howe_half_hour_fall_back() -> None:
    # Australia/Lord_Howe 2026-04-05: 02:00 (+11:00) falls back to 01:30 (+10:30); 01:30-02:00 happens twice.
    sunday = date(2026, 4, 5)
    rules = WeeklyRules("Australia/Lord_Howe", {6: windows("01:00-03:00")})
    q = query(rules, duration=30, now=utc(2026, 4, 1), date_from=sunday, date_to=sunday)
    assert local_starts(compute_slots(q), "Australia/Lord_Howe") == [
        "2026-04-05 01:00+11:00",
        "2026-04-05 01:30+11:00",
        "2026-04-05 01:30+10:30",
        "2026-04-05 02:00+10:30",
        "2026-04-05 02:30+10:30",
    ]


def test_half_hour_and_quarter_hour_zones() -> None:
    # Kolkata (+05:30) seen from Kathmandu (+05:45).
    kolkata = weekly("Asia/Kolkata", "09:00-10:00", MON_FRI)
    monday = date(2026, 1, 5)
    q = query(kolkata, duration=30, now=utc(2026, 1, 1), viewer_zone="Asia/Kathmandu", date_from=monday, date_to=monday)
    slots = compute_slots(q)
    assert starts(slots) == [utc(2026, 1, 5, 3, 30), utc(2026, 1, 5, 4, 0)]
    assert local_starts(slots, "Asia/Kathmandu") == ["2026-01-05 09:15+05:45", "2026-01-05 09:45+05:45"]

    # Adelaide (+10:30 until DST ends on 2026-04-05, then +09:30) seen from Kathmandu.
    adelaide = weekly("Australia/Adelaide", "18:00-19:00", MON_FRI)
    q = query(
        adelaide,
        step=60,
        now=utc(2026, 3, 30),
        viewer_zone="Asia/Kathmandu",
        date_from=date(2026, 4, 3),
        date_to=date(2026, 4, 6),
    )
    assert local_starts(compute_slots(q), "Asia/Kathmandu") == [
        "2026-04-03 13:15+05:45",  # Friday, 18:00 ACDT = 07:30 UTC
        "2026-04-06 14:15+05:45",  # Monday, 18:00 ACST = 08:30 UTC
    ]


def test_zones_changing_on_different_dates_keep_the_tutors_wall_clock() -> None:
    # A New York tutor at 09:00-10:00 seen from London: 14:00 normally, 13:00 between the US and EU changes.
    rules = weekly("America/New_York", "09:00-10:00", MON_FRI)
    q = query(
        rules,
        step=60,
        now=utc(2026, 3, 1),
        viewer_zone="Europe/London",
        date_from=date(2026, 3, 6),
        date_to=date(2026, 3, 30),
    )
    shown = {s.date(): s.strftime("%H:%M") for s, _ in to_zone(compute_slots(q), "Europe/London")}
    assert shown[date(2026, 3, 6)] == "14:00"
    assert shown[date(2026, 3, 9)] == "13:00"
    assert shown[date(2026, 3, 27)] == "13:00"
    assert shown[date(2026, 3, 30)] == "14:00"


# --- Windows, steps, overrides --------------------------------------------------------------


def test_slots_start_on_the_step_grid_of_the_window_and_may_overlap() -> None:
    rules = weekly("UTC", "09:10-11:10", (0,))
    monday = date(2026, 1, 5)
    q = query(rules, duration=60, step=30, date_from=monday, date_to=monday)
    assert [s.start.strftime("%H:%M") for s in compute_slots(q)] == ["09:10", "09:40", "10:10"]
    q = query(rules, duration=60, step=15, date_from=monday, date_to=monday)
    assert [s.start.strftime("%H:%M") for s in compute_slots(q)] == ["09:10", "09:25", "09:40", "09:55", "10:10"]


def test_touching_windows_are_not_merged() -> None:
    rules = weekly("UTC", "09:00-10:00, 10:00-11:00", (0,))
    monday = date(2026, 1, 5)
    q = query(rules, duration=60, date_from=monday, date_to=monday)
    assert [s.start.strftime("%H:%M") for s in compute_slots(q)] == ["09:00", "10:00"]


def test_window_ending_at_midnight() -> None:
    rules = weekly("Europe/Berlin", "22:00-24:00", (0,))
    monday = date(2026, 1, 5)
    q = query(rules, step=60, date_from=monday, date_to=monday)
    assert local_starts(compute_slots(q), "Europe/Berlin") == ["2026-01-05 22:00+01:00", "2026-01-05 23:00+01:00"]


def test_holiday_override_removes_the_day() -> None:
    rules = weekly("Europe/Berlin", "09:00-10:00", MON_FRI)
    q = query(
        rules,
        duration=60,
        date_from=date(2026, 1, 5),
        date_to=date(2026, 1, 6),
        overrides=(Override(date(2026, 1, 6)),),
    )
    assert local_starts(compute_slots(q), "Europe/Berlin") == ["2026-01-05 09:00+01:00"]


def test_extra_hours_override_adds_windows_and_replacement_override_replaces_them() -> None:
    rules = weekly("Europe/Berlin", "09:00-10:00", MON_FRI)
    base = {"duration": 60, "date_from": date(2026, 1, 5), "date_to": date(2026, 1, 10)}
    extra = Override(date(2026, 1, 5), windows("14:00-15:00"), replace=False)
    saturday = Override(date(2026, 1, 10), windows("10:00-11:00"), replace=False)
    replaced = Override(date(2026, 1, 6), windows("12:00-13:00"))
    got = local_starts(compute_slots(query(rules, overrides=(extra, saturday, replaced), **base)), "Europe/Berlin")
    assert got == [
        "2026-01-05 09:00+01:00",
        "2026-01-05 14:00+01:00",
        "2026-01-06 12:00+01:00",
        "2026-01-07 09:00+01:00",
        "2026-01-08 09:00+01:00",
        "2026-01-09 09:00+01:00",
        "2026-01-10 10:00+01:00",
    ]


# --- Notice, horizon, buffers, bookings, limits ---------------------------------------------


def test_minimum_notice_is_inclusive() -> None:
    rules = weekly("UTC", "09:00-12:00", (0,))
    monday = date(2026, 1, 5)
    q = query(rules, now=utc(2026, 1, 5, 8), notice=120, date_from=monday, date_to=monday)
    assert [s.start.strftime("%H:%M") for s in compute_slots(q)] == ["10:00", "10:30", "11:00"]
    q = query(rules, now=utc(2026, 1, 5, 8, 0, 1), notice=120, date_from=monday, date_to=monday)
    assert [s.start.strftime("%H:%M") for s in compute_slots(q)] == ["10:30", "11:00"]


def test_horizon_is_inclusive_and_defaults_to_sixty_days() -> None:
    rules = weekly("UTC", "07:00-10:00")
    now = utc(2026, 1, 5, 8)
    q = query(rules, now=now, horizon_days=1, date_from=date(2026, 1, 6), date_to=date(2026, 1, 6))
    assert [s.start.strftime("%H:%M") for s in compute_slots(q)] == ["07:00", "07:30", "08:00"]

    q = query(rules, now=now, date_from=date(2026, 1, 1), date_to=date(2026, 12, 31))
    slots = compute_slots(q)
    assert q.horizon_days == 60
    assert slots[-1].start == now + timedelta(days=60)
    assert slots[0].start == utc(2026, 1, 5, 8)


def test_horizon_above_ninety_days_is_rejected() -> None:
    rules = weekly("UTC", "07:00-10:00")
    with pytest.raises(RuleErrors) as exc:
        compute_slots(query(rules, horizon_days=MAX_HORIZON_DAYS + 1))
    assert exc.value.codes == ("horizon_too_long",)
    assert exc.value.errors[0].values == ("91", "90")
    assert compute_slots(query(rules, horizon_days=MAX_HORIZON_DAYS))


def test_buffers_around_an_existing_booking_block_nearby_starts() -> None:
    # Booking 10:00-11:00 occupies 09:45-11:15; a new lesson at t occupies [t - 15, t + 75).
    rules = weekly("UTC", "08:00-14:00", (0,))
    monday = date(2026, 1, 5)
    q = query(
        rules,
        step=15,
        buffer_before=15,
        buffer_after=15,
        bookings=(Interval(utc(2026, 1, 5, 10), utc(2026, 1, 5, 11)),),
        date_from=monday,
        date_to=monday,
    )
    got = [s.start.strftime("%H:%M") for s in compute_slots(q)]
    assert got == ["08:00", "08:15", "08:30", "11:30", "11:45", "12:00", "12:15", "12:30", "12:45", "13:00"]


def test_external_busy_time_blocks_the_lesson_and_its_buffers_but_gets_no_buffer_itself() -> None:
    rules = weekly("UTC", "08:00-14:00", (0,))
    monday = date(2026, 1, 5)
    q = query(
        rules,
        step=15,
        buffer_before=15,
        buffer_after=15,
        busy=(Interval(utc(2026, 1, 5, 10), utc(2026, 1, 5, 11)),),
        date_from=monday,
        date_to=monday,
    )
    got = [s.start.strftime("%H:%M") for s in compute_slots(q)]
    assert got == [
        "08:00",
        "08:15",
        "08:30",
        "08:45",
        "11:15",
        "11:30",
        "11:45",
        "12:00",
        "12:15",
        "12:30",
        "12:45",
        "13:00",
    ]


def test_bookings_and_busy_times_are_instants_whatever_their_zone() -> None:
    rules = weekly("UTC", "08:00-12:00", (0,))
    monday = date(2026, 1, 5)
    new_york = ZoneInfo("America/New_York")
    booking = Interval(datetime(2026, 1, 5, 4, tzinfo=new_york), datetime(2026, 1, 5, 5, tzinfo=new_york))  # 09-10 UTC
    q = query(rules, bookings=(booking,), date_from=monday, date_to=monday)
    assert [s.start.strftime("%H:%M") for s in compute_slots(q)] == ["08:00", "10:00", "10:30", "11:00"]


def test_a_day_with_the_maximum_number_of_lessons_offers_no_slots() -> None:
    # Tokyo tutor; a booking at Sunday 23:30 UTC is Monday 08:30 in Tokyo and counts for Monday.
    rules = weekly("Asia/Tokyo", "09:00-12:00, 14:00-18:00", MON_FRI)
    bookings = (
        Interval(utc(2026, 1, 4, 23, 30), utc(2026, 1, 5, 0, 0)),  # Monday 08:30-09:00 JST
        Interval(utc(2026, 1, 5, 1), utc(2026, 1, 5, 2)),  # Monday 10:00-11:00 JST
        Interval(utc(2026, 1, 6, 1), utc(2026, 1, 6, 2)),  # Tuesday 10:00-11:00 JST
    )
    base = {"now": utc(2026, 1, 1), "date_from": date(2026, 1, 5), "date_to": date(2026, 1, 6), "step": 60}
    days = {
        s.date()
        for s, _ in to_zone(compute_slots(query(rules, max_per_day=2, bookings=bookings, **base)), "Asia/Tokyo")
    }
    assert days == {date(2026, 1, 6)}
    days = {
        s.date()
        for s, _ in to_zone(compute_slots(query(rules, max_per_day=3, bookings=bookings, **base)), "Asia/Tokyo")
    }
    assert days == {date(2026, 1, 5), date(2026, 1, 6)}


# --- The viewer's date range ----------------------------------------------------------------


def test_viewer_date_range_is_in_the_viewers_zone() -> None:
    # Berlin 18:00-21:00 (CET) is 02:00-05:00 the next day in Tokyo.
    rules = weekly("Europe/Berlin", "18:00-21:00", MON_FRI)
    tuesday_in_tokyo = query(
        rules, step=60, viewer_zone="Asia/Tokyo", date_from=date(2026, 1, 13), date_to=date(2026, 1, 13)
    )
    assert local_starts(compute_slots(tuesday_in_tokyo), "Asia/Tokyo") == [
        "2026-01-13 02:00+09:00",
        "2026-01-13 03:00+09:00",
        "2026-01-13 04:00+09:00",
    ]
    assert local_starts(compute_slots(tuesday_in_tokyo), "Europe/Berlin")[0] == "2026-01-12 18:00+01:00"
    monday_in_tokyo = query(
        rules, step=60, viewer_zone="Asia/Tokyo", date_from=date(2026, 1, 12), date_to=date(2026, 1, 12)
    )
    assert compute_slots(monday_in_tokyo) == []  # Sunday evening in Berlin


def test_viewer_date_range_boundaries_cut_at_the_viewers_midnight() -> None:
    # Berlin Tuesday 00:00-02:00 is Monday 23:00 - Tuesday 01:00 UTC.
    rules = weekly("Europe/Berlin", "00:00-02:00", (1,))
    q = query(rules, duration=30, viewer_zone="UTC", date_from=date(2026, 1, 5), date_to=date(2026, 1, 5))
    assert starts(compute_slots(q)) == [utc(2026, 1, 5, 23), utc(2026, 1, 5, 23, 30)]
    q = query(rules, duration=30, viewer_zone="UTC", date_from=date(2026, 1, 6), date_to=date(2026, 1, 6))
    assert starts(compute_slots(q)) == [utc(2026, 1, 6, 0), utc(2026, 1, 6, 0, 30)]


def test_to_zone_gives_the_offset_in_force_at_each_instant() -> None:
    slots = [Interval(utc(2026, 3, 7, 17), utc(2026, 3, 7, 18)), Interval(utc(2026, 3, 9, 17), utc(2026, 3, 9, 18))]
    shown = to_zone(slots, "America/New_York")
    assert [s.utcoffset() for s, _ in shown] == [timedelta(hours=-5), timedelta(hours=-4)]
    with pytest.raises(RuleErrors) as exc:
        to_zone(slots, "Mars/Olympus_Mons")
    assert exc.value.codes == ("unknown_zone",)


# --- Validation -----------------------------------------------------------------------------


def test_overlapping_windows_are_reported_with_both_windows() -> None:
    errors = validate_windows(windows("09:00-12:00, 11:00-13:00"), "days.0")
    assert [(e.code, e.where, e.values) for e in errors] == [("overlap", "days.0", ("09:00-12:00", "11:00-13:00"))]


def test_inverted_and_empty_windows_are_reported() -> None:
    errors = validate_windows(windows("12:00-09:00, 10:00-10:00"))
    assert [(e.code, e.values) for e in errors] == [("inverted", ("12:00-09:00",)), ("inverted", ("10:00-10:00",))]


def test_touching_windows_and_a_whole_day_are_valid() -> None:
    assert validate_windows(windows("09:00-10:00, 10:00-11:00")) == []
    assert validate_windows(windows("00:00-24:00")) == []


def test_window_times_must_be_naive_whole_minutes() -> None:
    errors = validate_windows((Window(time(9, 0, 30), time(10)), Window(time(11, tzinfo=UTC), time(12))))
    assert [e.code for e in errors] == ["not_whole_minute", "aware_time"]


def test_unknown_zones_are_reported_for_tutor_and_viewer() -> None:
    rules = weekly("Europe/Berlinn", "09:00-10:00")
    errors = validate_query(query(rules, viewer_zone="Nowhere/City"))
    assert [(e.code, e.where, e.values) for e in errors] == [
        ("unknown_zone", "zone", ("Europe/Berlinn",)),
        ("unknown_zone", "viewer_zone", ("Nowhere/City",)),
    ]
    # "localtime" would follow the machine's /etc/localtime; path tricks are not zones either.
    for name in ("localtime", "../../etc/passwd", "", "europe/berlin"):
        assert [e.code for e in validate_rules(weekly(name, "09:00-10:00"))] == ["unknown_zone"]


def test_compute_slots_raises_every_problem_at_once() -> None:
    rules = WeeklyRules("Europe/Berlin", {0: windows("09:00-12:00, 11:00-13:00"), 7: windows("09:00-10:00")})
    q = query(
        rules,
        duration=0,
        notice=-5,
        now=datetime(2026, 1, 1),  # naive
        date_from=date(2026, 1, 10),
        date_to=date(2026, 1, 9),
        overrides=(Override(date(2026, 1, 5), windows("10:00-11:00"), replace=False),),
    )
    with pytest.raises(RuleErrors) as exc:
        compute_slots(q)
    assert set(exc.value.codes) == {
        "overlap",
        "bad_weekday",
        "not_positive",
        "negative",
        "naive_datetime",
        "inverted_range",
    }
    assert ("overlap", "overrides.2026-01-05") in {(e.code, e.where) for e in exc.value.errors}


def test_inverted_booking_and_duplicate_override_are_reported() -> None:
    rules = weekly("UTC", "09:00-10:00")
    q = query(
        rules,
        bookings=(Interval(utc(2026, 1, 2, 10), utc(2026, 1, 2, 9)),),
        overrides=(Override(date(2026, 1, 2)), Override(date(2026, 1, 2))),
        max_per_day=0,
    )
    assert [e.code for e in validate_query(q)] == ["duplicate_override", "bad_max_per_day", "inverted_interval"]


def test_parse_window_accepts_24_00_and_rejects_bad_text() -> None:
    assert parse_window("18:00-24:00") == Window(time(18), time(0))
    assert str(parse_window(" 9:05 - 10:00 ")) == "09:05-10:00"
    for bad in ("18-21", "25:00-26:00", "10:60-11:00", "24:00-24:00", "09:00"):
        with pytest.raises(RuleErrors) as exc:
            parse_window(bad)
        assert exc.value.codes == ("bad_format",)
    assert parse_windows("") == ()


# --- Independence from the process time zone ------------------------------------------------


@pytest.fixture
def process_tz() -> Iterator[None]:
    saved = os.environ.get("TZ")
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time_module.tzset()


def test_results_do_not_depend_on_the_process_time_zone(process_tz: None) -> None:
    rules = weekly("Europe/Berlin", "01:00-04:00, 18:00-21:00")
    q = query(
        rules,
        now=utc(2026, 3, 25, 12, 7),
        notice=90,
        viewer_zone="America/New_York",
        date_from=date(2026, 3, 26),
        date_to=date(2026, 4, 2),
        bookings=(Interval(utc(2026, 3, 27, 17), utc(2026, 3, 27, 18)),),
        buffer_before=10,
        buffer_after=5,
        max_per_day=3,
    )
    results = []
    for tz in ("UTC", "Pacific/Chatham", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin"):
        os.environ["TZ"] = tz
        time_module.tzset()
        slots = compute_slots(q)
        results.append((slots, to_zone(slots, "America/New_York")))
    assert results[0][0]
    assert all(r == results[0] for r in results)
