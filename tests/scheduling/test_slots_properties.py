"""Property tests for the slot engine (scheduling.slots) over random rules, zones and bookings.

Definitions checked (the same as in the scheduling.slots docstring):

* A lesson ``[start, end)`` occupies ``[start - buffer_before, end + buffer_after)``. A slot's
  occupied interval must not intersect any existing booking's/hold's occupied interval, nor any
  external busy interval ``[start, end)`` as given. Intervals are half-open; an empty interval
  intersects nothing.
* Every instant of a slot reads, on the tutor's wall clock, inside one window of the tutor-local
  date of its start; its real (UTC) length is the requested duration; its start's wall time is
  ``window start + k * step``.
* ``now + notice <= start <= now + horizon``; the start's date in the viewer's zone is in
  ``[date_from, date_to]``.
* Slots may overlap each other (they are alternatives) but are unique and sorted.
* A tutor-local date holding ``max_per_day`` bookings/holds offers no slot.

The last property compares the engine with a slow, independent reference that builds local
datetimes with ``fold=0`` and ``fold=1`` for every candidate wall time and checks each constraint
directly, so the engine must also not *miss* any bookable slot.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduling.slots import Interval, Override, SlotQuery, WeeklyRules, Window, compute_slots, to_zone


# Pure logic, no I/O: this module does not need the database that the suite's autouse fixtures
# (tests/conftest.py) migrate and empty around every test, so it overrides them with no-ops.
@pytest.fixture(scope="session")
def migrated_database() -> str:
    return ""


@pytest.fixture
def clean_state() -> None:
    return None


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Zones with every kind of offset behaviour: EU and US DST on different dates, southern-hemisphere
# DST, 30-minute DST (Lord Howe), half-hour and 45-minute offsets, DST at midnight (Santiago,
# Havana), Ramadan changes (Casablanca), negative DST (Dublin), +14 and -11.
ZONES = [
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "America/Havana",
    "America/Nuuk",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Auckland",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Africa/Casablanca",
    "UTC",
]


@cache
def offset_changes(zone: str) -> tuple[datetime, ...]:
    """The instants (UTC, to the minute) where ``zone`` changes its UTC offset in 2025-2028."""
    tz = ZoneInfo(zone)
    found = []
    t = datetime(2025, 1, 1, tzinfo=UTC)
    offset = t.astimezone(tz).utcoffset()
    while t < datetime(2029, 1, 1, tzinfo=UTC):
        nxt = t + timedelta(hours=1)
        if nxt.astimezone(tz).utcoffset() != offset:
            lo, hi = t, nxt
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if mid.astimezone(tz).utcoffset() == offset else (lo, mid)
            found.append(hi)
            offset = nxt.astimezone(tz).utcoffset()
        t = nxt
    return tuple(found)


def _clock(minute: int) -> time:
    return time((minute // 60) % 24, minute % 60)


def _wall_minute(instant: datetime, zone: str) -> int:
    local = instant.astimezone(ZoneInfo(zone))
    return local.hour * 60 + local.minute


@st.composite
def window_sets(draw: st.DrawFn, near: int | None = None) -> tuple[Window, ...]:
    """Non-overlapping windows for one date (boundaries on a 5-minute grid, 24:00 allowed).

    With ``near`` (a wall minute), boundaries are drawn mostly within 2.5 hours of it, so that
    windows start, end or run across an offset change.
    """
    mark = st.integers(0, 288)
    if near is not None:
        mark = st.one_of(mark, st.integers(max(0, near // 5 - 30), min(288, near // 5 + 30)))
    marks = sorted(draw(st.lists(mark, unique=True, min_size=draw(st.sampled_from([0, 2, 2, 2])), max_size=6)))
    return tuple(Window(_clock(a * 5), _clock(b * 5)) for a, b in zip(marks[::2], marks[1::2], strict=False))


def _overlaps(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> bool:
    """Half-open intersection; an empty interval intersects nothing."""
    return a0 < a1 and b0 < b1 and a0 < b1 and b0 < a1


def _minutes(w: Window) -> tuple[int, int]:
    return w.start_minute, w.end_minute


@st.composite
def queries(draw: st.DrawFn) -> SlotQuery:
    """Random queries, mostly placed around an offset change of the tutor's or the viewer's zone."""
    tutor_zone = draw(st.sampled_from(ZONES))
    viewer_zone = draw(st.sampled_from(ZONES))
    focus_zone = draw(st.sampled_from([tutor_zone, tutor_zone, viewer_zone]))
    changes = offset_changes(focus_zone)
    near = None
    if changes and draw(st.integers(0, 4)):
        change = draw(st.sampled_from(changes))
        now = change - timedelta(minutes=draw(st.integers(0, 4 * 1440)), seconds=draw(st.sampled_from([0, 0, 17])))
        near = _wall_minute(change - timedelta(minutes=1), tutor_zone)
        viewer = ZoneInfo(viewer_zone)
        shown = change.astimezone(viewer).date() - timedelta(days=draw(st.integers(0, 3)))
        shown = max(shown, now.astimezone(viewer).date())
    else:
        now = draw(st.datetimes(datetime(2024, 1, 1), datetime(2035, 12, 31))).replace(tzinfo=UTC)
        shown = now.date() + timedelta(days=draw(st.integers(-2, 8)))
    days = draw(st.dictionaries(st.integers(0, 6), window_sets(near), min_size=2, max_size=7))
    rules = WeeklyRules(tutor_zone, days)

    today = now.date()
    override_days = draw(st.lists(st.integers(-2, 10), unique=True, max_size=4))
    overrides = []
    for offset in override_days:
        day = today + timedelta(days=offset)
        replace = draw(st.booleans())
        windows = draw(window_sets(near))
        if not replace:  # extra hours must not overlap the weekly ones
            weekly = [_minutes(w) for w in days.get(day.weekday(), ())]
            windows = tuple(w for w in windows if all(w.end_minute <= a or b <= w.start_minute for a, b in weekly))
        overrides.append(Override(day, windows, replace))

    @st.composite
    def intervals(draw2: st.DrawFn) -> Interval:
        start = now + timedelta(
            minutes=draw2(st.integers(-3 * 1440, 12 * 1440)), seconds=draw2(st.sampled_from([0, 0, 0, 30]))
        )
        return Interval(start, start + timedelta(minutes=draw2(st.integers(0, 240))))

    bookings = tuple(draw(st.lists(intervals(), max_size=8)))
    busy = tuple(draw(st.lists(intervals(), max_size=5)))
    date_from = shown
    date_to = date_from + timedelta(days=draw(st.integers(0, 6)))
    return SlotQuery(
        rules=rules,
        duration=draw(st.sampled_from([15, 30, 45, 50, 60, 90, 120])),
        step=draw(st.sampled_from([5, 10, 15, 20, 30, 45, 60])),
        now=now,
        viewer_zone=viewer_zone,
        date_from=date_from,
        date_to=date_to,
        overrides=tuple(overrides),
        bookings=bookings,
        busy=busy,
        buffer_before=draw(st.sampled_from([0, 0, 5, 10, 15, 30])),
        buffer_after=draw(st.sampled_from([0, 0, 5, 10, 15, 30])),
        notice=draw(st.sampled_from([0, 0, 0, 30, 60, 12 * 60, 24 * 60, 3 * 24 * 60])),
        horizon_days=draw(st.one_of(st.integers(0, 90), st.just(60))),
        max_per_day=draw(st.one_of(st.none(), st.integers(1, 3))),
    )


def _windows_on(q: SlotQuery, day: date) -> tuple[Window, ...]:
    weekly = tuple(q.rules.days.get(day.weekday(), ()))
    for o in q.overrides:
        if o.date == day:
            return o.windows if o.replace else weekly + o.windows
    return weekly


def _naive_wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _inside_window(start: datetime, end: datetime, tz: ZoneInfo, lo: datetime, hi: datetime) -> bool:
    """Does every instant of [start, end) read inside the naive wall-clock range [lo, hi) in tz?"""
    if start.astimezone(tz).utcoffset() == (end - timedelta(microseconds=1)).astimezone(tz).utcoffset():
        wall = _naive_wall(start, tz)
        return lo <= wall and wall + (end - start) <= hi
    # The offset changes inside the slot: look at every minute (slots and changes are on whole minutes).
    t = start
    while t < end:
        if not lo <= _naive_wall(t, tz) < hi:
            return False
        t += timedelta(minutes=1)
    return True


def _window_of(q: SlotQuery, slot: Interval) -> Window | None:
    tz = ZoneInfo(q.rules.zone)
    day = slot.start.astimezone(tz).date()
    midnight = datetime.combine(day, time())
    for w in _windows_on(q, day):
        lo = midnight + timedelta(minutes=w.start_minute)
        hi = midnight + timedelta(minutes=w.end_minute)
        if _inside_window(slot.start, slot.end, tz, lo, hi):
            return w
    return None


def reference_slots(q: SlotQuery) -> list[Interval]:
    """Slow, direct implementation of the definitions, for comparison."""
    tz, vz = ZoneInfo(q.rules.zone), ZoneInfo(q.viewer_zone)
    duration = timedelta(minutes=q.duration)
    before, after = timedelta(minutes=q.buffer_before), timedelta(minutes=q.buffer_after)
    earliest = q.now + timedelta(minutes=q.notice)
    latest = q.now + timedelta(days=q.horizon_days)
    if latest < earliest:
        return []
    shown_from = datetime.combine(q.date_from, time(), tzinfo=vz) - timedelta(days=1)
    shown_to = datetime.combine(q.date_to, time(), tzinfo=vz) + timedelta(days=2)
    first_day = max(earliest, shown_from).astimezone(tz).date() - timedelta(days=1)
    last_day = min(latest, shown_to).astimezone(tz).date() + timedelta(days=1)
    per_day = Counter(b.start.astimezone(tz).date() for b in q.bookings)

    found: set[datetime] = set()
    day = first_day
    while day <= last_day:
        if q.max_per_day is None or per_day[day] < q.max_per_day:
            midnight = datetime.combine(day, time())
            for w in _windows_on(q, day):
                lo = midnight + timedelta(minutes=w.start_minute)
                hi = midnight + timedelta(minutes=w.end_minute)
                for minute in range(w.start_minute, w.end_minute, q.step):
                    wall = midnight + timedelta(minutes=minute)
                    for fold in (0, 1):
                        start = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
                        if _naive_wall(start, tz) != wall:  # wall time in a gap: does not exist
                            continue
                        end = start + duration
                        if not earliest <= start <= latest:
                            continue
                        if not q.date_from <= start.astimezone(vz).date() <= q.date_to:
                            continue
                        if not _inside_window(start, end, tz, lo, hi):
                            continue
                        if any(
                            _overlaps(start - before, end + after, b.start - before, b.end + after) for b in q.bookings
                        ):
                            continue
                        if any(_overlaps(start - before, end + after, x.start, x.end) for x in q.busy):
                            continue
                        found.add(start)
        day += timedelta(days=1)
    return [Interval(s, s + duration) for s in sorted(found)]


@PROPERTY_SETTINGS
@given(queries())
def test_no_slot_overlaps_a_booking_or_busy_time_including_buffers(q: SlotQuery) -> None:
    before, after = timedelta(minutes=q.buffer_before), timedelta(minutes=q.buffer_after)
    for slot in compute_slots(q):
        occupied = (slot.start - before, slot.end + after)
        for b in q.bookings:
            assert not _overlaps(*occupied, b.start - before, b.end + after), (slot, b)
        for x in q.busy:
            assert not _overlaps(*occupied, x.start, x.end), (slot, x)


@PROPERTY_SETTINGS
@given(queries())
def test_every_slot_lies_inside_one_window_with_the_real_duration_on_the_step_grid(q: SlotQuery) -> None:
    tz = ZoneInfo(q.rules.zone)
    for slot in compute_slots(q):
        assert slot.start.utcoffset() == timedelta(0)
        assert slot.end - slot.start == timedelta(minutes=q.duration)
        window = _window_of(q, slot)
        assert window is not None, slot
        local = slot.start.astimezone(tz)
        assert (local.hour * 60 + local.minute - window.start_minute) % q.step == 0
        assert local.second == 0


@PROPERTY_SETTINGS
@given(queries())
def test_slots_start_between_notice_and_horizon_on_the_viewers_dates(q: SlotQuery) -> None:
    viewer = ZoneInfo(q.viewer_zone)
    for slot in compute_slots(q):
        assert q.now + timedelta(minutes=q.notice) <= slot.start <= q.now + timedelta(days=q.horizon_days)
        assert q.date_from <= slot.start.astimezone(viewer).date() <= q.date_to


@PROPERTY_SETTINGS
@given(queries())
def test_slots_are_unique_and_sorted(q: SlotQuery) -> None:
    slots = compute_slots(q)
    assert slots == sorted(slots)
    assert len({s.start for s in slots}) == len(slots)


@PROPERTY_SETTINGS
@given(queries())
def test_a_day_with_max_bookings_offers_no_slots(q: SlotQuery) -> None:
    if q.max_per_day is None:
        return
    tz = ZoneInfo(q.rules.zone)
    per_day = Counter(b.start.astimezone(tz).date() for b in q.bookings)
    for slot in compute_slots(q):
        assert per_day[slot.start.astimezone(tz).date()] < q.max_per_day, slot


@PROPERTY_SETTINGS
@given(queries())
def test_slots_equal_a_brute_force_reference(q: SlotQuery) -> None:
    assert compute_slots(q) == reference_slots(q)


@PROPERTY_SETTINGS
@given(queries())
def test_viewer_local_slots_convert_back_to_the_same_instants(q: SlotQuery) -> None:
    slots = compute_slots(q)
    shown = to_zone(slots, q.viewer_zone)
    viewer = ZoneInfo(q.viewer_zone)
    for slot, (start, end) in zip(slots, shown, strict=True):
        assert start.tzinfo is viewer and end.tzinfo is viewer
        assert start.utcoffset() == viewer.utcoffset(start)
        # naive wall time + fold is enough to get the instant back
        assert start.replace(tzinfo=None).replace(tzinfo=viewer, fold=start.fold).astimezone(UTC) == slot.start
        assert end.replace(tzinfo=None).replace(tzinfo=viewer, fold=end.fold).astimezone(UTC) == slot.end
