"""The slot engine: which lesson start times a tutor can be booked for. Pure: no I/O, no app imports.

Inputs and outputs
------------------
:func:`compute_slots` takes one :class:`SlotQuery` (weekly wall-clock rules in the tutor's IANA
zone, date overrides, buffers, notice, horizon, maximum lessons per day, lesson duration and step,
existing bookings/holds and external busy times as UTC instants, the current instant, the viewer's
zone and a range of the viewer's dates) and returns the bookable slots as :class:`Interval` values
of aware UTC datetimes, sorted and unique. :func:`to_zone` shows them in a viewer's zone.

Definitions (the property tests check exactly these)
----------------------------------------------------
* **Window instants.** A window ``[start, end)`` on local date *D* stands for every real instant
  whose wall-clock reading in the tutor's zone lies in ``[D start, D end)``. A slot must lie
  entirely inside one window (touching windows are not merged), so its real length is the
  requested duration and every instant of it reads inside that window on the tutor's clock.
* **Step.** A slot starts where the tutor's wall clock reads ``start + k * step`` for a whole
  ``k`` (the grid is aligned to the window start in wall-clock time).
* **Buffers.** A lesson occupies ``[start - buffer_before, end + buffer_after)`` (half-open). A
  slot is blocked when its occupied interval intersects an existing booking's or hold's occupied
  interval (the same buffers applied to it), or intersects an external busy interval
  ``[busy_start, busy_end)`` itself. So between an existing lesson's end and a new lesson's start
  there are at least ``buffer_after + buffer_before`` minutes. Buffers may lie outside windows.
* **Notice and horizon.** ``now + notice <= slot start <= now + horizon`` (instants).
* **Viewer range.** The slot start's date *in the viewer's zone* is within ``[date_from, date_to]``.
* **Maximum per day.** A tutor-local date with ``max_per_day`` or more bookings/holds starting on
  it (by the tutor's wall clock) offers no slots.

Daylight saving time (decisions)
--------------------------------
* Everything is computed on integer UTC seconds. Wall-clock windows are turned into UTC instants
  with the zone's offset *segments* (the UTC instants where the zone's offset changes, found from
  ``zoneinfo``), never by constructing local datetimes and subtracting durations in local time.
* **Spring forward (gap):** wall times in the gap do not exist, so no instant reads inside it and
  no slot starts inside it. A window spanning the gap is shorter in real time (Berlin
  01:00-04:00 on 2026-03-29 is 2 real hours: 01:00-02:00 CET then 03:00-04:00 CEST), and a slot
  may run across the jump (01:30 CET -> 03:30 CEST is 60 real minutes).
* **Fall back (repeated hour):** ``fold`` is not guessed per wall time. Both occurrences of a
  repeated wall time are distinct instants and both belong to a window covering that wall time,
  so Berlin 00:00-04:00 on 2026-10-25 is 5 real hours and with a 60-minute step offers 02:00 CEST
  and 02:00 CET as two different slots (one UTC hour apart, never duplicates). A window whose
  start or end falls *inside* the repeated hour is, by the definition above, the instants whose
  wall time reads inside it: e.g. 02:30-04:00 is 02:30-03:00 CEST plus 02:30 CET-04:00 CET, and
  it excludes 02:00-02:30 CET, which reads outside the window. (The common shortcut "start with
  fold=0, end with fold=1" would include that half hour; "fold=0 everywhere" would make a window
  ending at 03:00 leak into the second pass inconsistently.) :func:`to_zone` uses ``astimezone``,
  which sets ``fold=1`` on the second occurrence, so local datetimes round-trip to the same UTC
  instant and show the right offset (+02:00 vs +01:00).
* Zones that change on different dates, half-hour and 45-minute offsets, and 30-minute DST shifts
  (Australia/Lord_Howe) need no special cases: they are just other offset segments.
* The process ``TZ`` is never consulted: only aware datetimes, ``ZoneInfo`` and UTC arithmetic are
  used, and the machine-dependent key ``localtime`` is rejected as a zone.
* Offset changes are found by sampling the zone once a day and bisecting to the second, and are
  cached per zone and ~24-day block of UTC time (tz rules do not change while the process runs).
  Two changes that cancel out within one day would be missed; tzdb has none: since 1990 the
  closest two offset changes of any zone are 167 hours apart (Brazil, October 2000).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from scheduling.rules import (
    Override,
    RuleError,
    RuleErrors,
    WeeklyRules,
    Window,
    parse_window,
    parse_windows,
    validate_overrides,
    validate_rules,
    validate_windows,
    validate_zone,
    zone_or_none,
)

__all__ = [
    "DEFAULT_HORIZON_DAYS",
    "MAX_HORIZON_DAYS",
    "Interval",
    "Override",
    "RuleError",
    "RuleErrors",
    "SlotQuery",
    "WeeklyRules",
    "Window",
    "compute_slots",
    "parse_window",
    "parse_windows",
    "to_zone",
    "validate_query",
    "validate_windows",
    "validate_zone",
]

MAX_HORIZON_DAYS = 90
DEFAULT_HORIZON_DAYS = 60

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH_WEEKDAY = date(1970, 1, 1).weekday()  # Thursday
_DAY = 86_400
_US = 1_000_000
_ONE_US = timedelta(microseconds=1)
_ONE_SECOND = timedelta(seconds=1)
# Larger than any UTC offset (tzdb's extremes are about +-15:57 local mean time): an instant whose
# wall time is w lies in (w - _MARGIN, w + _MARGIN).
_MARGIN = 26 * 3600
_SAMPLE = _DAY  # see the module docstring: changes are >= 7 days apart
_BLOCK = 1 << 21  # seconds (about 24 days): the unit cached per zone
_FAR_PAST = -(1 << 62)
_FAR_FUTURE = 1 << 62


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """A half-open ``[start, end)`` between two aware datetimes (UTC in everything this module returns)."""

    start: datetime
    end: datetime


@dataclass(frozen=True, kw_only=True)
class SlotQuery:
    """Everything :func:`compute_slots` needs. Minutes for durations, days for the horizon."""

    rules: WeeklyRules
    duration: int  # lesson length, minutes
    now: datetime  # aware
    viewer_zone: str
    date_from: date  # first date shown, in the viewer's zone
    date_to: date  # last date shown (inclusive), in the viewer's zone
    overrides: tuple[Override, ...] = ()
    bookings: tuple[Interval, ...] = ()  # existing bookings and holds (aware instants)
    busy: tuple[Interval, ...] = ()  # external calendar busy times (aware instants)
    buffer_before: int = 0  # minutes
    buffer_after: int = 0  # minutes
    notice: int = 0  # minutes between now and the earliest start
    horizon_days: int = DEFAULT_HORIZON_DAYS  # latest start is now + this many days (<= 90)
    max_per_day: int | None = None  # per tutor-local date, bookings and holds count
    step: int = 30  # minutes between candidate starts


def _aware(dt: object) -> bool:
    return isinstance(dt, datetime) and dt.tzinfo is not None and dt.utcoffset() is not None


def _intervals_us(intervals: Iterable[Interval], where: str, errors: list[RuleError]) -> list[tuple[int, int]]:
    """Exact ``(start, end)`` microseconds since the epoch; problems go to ``errors``."""
    out: list[tuple[int, int]] = []
    epoch, one_us = _EPOCH, _ONE_US
    for i, iv in enumerate(intervals):
        try:
            s, e = (iv.start - epoch) // one_us, (iv.end - epoch) // one_us
        except TypeError:  # naive datetime (or not a datetime at all)
            errors.append(RuleError("naive_datetime", f"{where}.{i}", (str(iv.start), str(iv.end))))
            continue
        if e < s:
            errors.append(RuleError("inverted_interval", f"{where}.{i}", (iv.start.isoformat(), iv.end.isoformat())))
            continue
        out.append((s, e))
    return out


def _validate_parameters(query: SlotQuery) -> list[RuleError]:
    """Everything but the bookings and busy intervals."""
    q = query
    errors = validate_rules(q.rules)
    errors += validate_overrides(q.rules, q.overrides)
    errors += validate_zone(q.viewer_zone, "viewer_zone")
    for name in ("duration", "step"):
        if getattr(q, name) <= 0:
            errors.append(RuleError("not_positive", name, (str(getattr(q, name)),)))
    for name in ("buffer_before", "buffer_after", "notice", "horizon_days"):
        if getattr(q, name) < 0:
            errors.append(RuleError("negative", name, (str(getattr(q, name)),)))
    if q.horizon_days > MAX_HORIZON_DAYS:
        errors.append(RuleError("horizon_too_long", "horizon_days", (str(q.horizon_days), str(MAX_HORIZON_DAYS))))
    if q.max_per_day is not None and q.max_per_day < 1:
        errors.append(RuleError("bad_max_per_day", "max_per_day", (str(q.max_per_day),)))
    if not _aware(q.now):
        errors.append(RuleError("naive_datetime", "now", (str(q.now),)))
    if q.date_to < q.date_from:
        errors.append(RuleError("inverted_range", "date_to", (q.date_from.isoformat(), q.date_to.isoformat())))
    return errors


def validate_query(query: SlotQuery) -> list[RuleError]:
    """Every problem with a query, as :class:`RuleError` codes (empty list: the query is valid)."""
    errors = _validate_parameters(query)
    _intervals_us(query.bookings, "bookings", errors)
    _intervals_us(query.busy, "busy", errors)
    return errors


def _offset(zone: ZoneInfo, t: int) -> int:
    return datetime.fromtimestamp(t, zone).utcoffset() // _ONE_SECOND


@lru_cache(maxsize=4096)
def _block_changes(zone: ZoneInfo, block: int) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The offset at the first second of UTC block ``block`` and the changes ``(t, new_offset)`` in
    ``(block start, block end]``. Cached: a zone's rules do not change while the process runs."""
    lo = block * _BLOCK
    first = _offset(zone, lo)
    changes: list[tuple[int, int]] = []
    t, o = lo, first
    while t < lo + _BLOCK:
        nt = min(t + _SAMPLE, lo + _BLOCK)
        no = _offset(zone, nt)
        if no != o:
            # offset(t) == o != offset(nt): bisect to the first second with another offset, repeat
            # until nt's offset is reached (several changes between two samples are handled).
            t0, o0 = t, o
            while o0 != no:
                a, b = t0, nt
                while b - a > 1:
                    mid = (a + b) // 2
                    if _offset(zone, mid) == o0:
                        a = mid
                    else:
                        b = mid
                t0, o0 = b, _offset(zone, b)
                changes.append((t0, o0))
        t, o = nt, no
    return first, tuple(changes)


class _Offsets:
    """A zone's UTC offset as a step function of UTC seconds, exact on ``[lo, hi]``.

    Segment ``i`` covers ``[starts[i], starts[i + 1])`` with offset ``offsets[i]`` seconds.
    """

    __slots__ = ("offsets", "starts")

    def __init__(self, zone: ZoneInfo, lo: int, hi: int) -> None:
        first_block, last_block = lo // _BLOCK, hi // _BLOCK
        first, _ = _block_changes(zone, first_block)
        self.starts = [_FAR_PAST]
        self.offsets = [first]
        for block in range(first_block, last_block + 1):
            for t, o in _block_changes(zone, block)[1]:
                self.starts.append(t)
                self.offsets.append(o)

    def offset_at(self, t: int) -> int:
        return self.offsets[bisect_right(self.starts, t) - 1]

    def wall_to_utc(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """The instants whose wall time lies in ``[a, b)`` (wall seconds since 1970-01-01 00:00).

        Returns ``(utc_lo, utc_hi, offset)`` pieces in time order, one per offset segment touched.
        """
        starts, offsets = self.starts, self.offsets
        n = len(starts)
        if n == 1:
            o = offsets[0]
            return [(a - o, b - o, o)]
        pieces = []
        i = bisect_right(starts, a - _MARGIN) - 1
        limit = b + _MARGIN
        while i < n and starts[i] < limit:
            o = offsets[i]
            lo = max(a - o, starts[i])
            hi = min(b - o, starts[i + 1] if i + 1 < n else _FAR_FUTURE)
            if lo < hi:
                pieces.append((lo, hi, o))
            i += 1
        return pieces


def _utc_us(dt: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime."""
    return (dt - _EPOCH) // _ONE_US


def _ceil_seconds(us: int) -> int:
    return -(-us // _US)


def _blocked_starts(
    bookings: Sequence[tuple[int, int]],
    busy: Sequence[tuple[int, int]],
    *,
    dur: int,
    before: int,
    after: int,
    lo: int,
    hi: int,
) -> list[tuple[int, int]]:
    """Sorted, merged ``[a, b)`` ranges of integer start seconds that a booking or busy time forbids.

    Intervals are in microseconds; ``dur``, ``before`` and ``after`` in seconds. A slot
    ``[t, t + dur)`` occupies ``[t - before, t + dur + after)``, which intersects an occupied
    ``[s, e)`` iff ``s - dur - after < t < e + before``. A booking occupies
    ``[start - before, end + after)``, a busy time ``[start, end)``. Empty intervals intersect
    nothing. Only ranges that reach into ``[lo, hi)`` are kept.
    """
    bb, ba, dur_us = before * _US, after * _US, dur * _US
    raw: list[tuple[int, int]] = []
    for intervals, pad_before, pad_after in ((bookings, bb, ba), (busy, 0, 0)):
        for start, end in intervals:
            s, e = start - pad_before, end + pad_after
            if e <= s:
                continue
            a = (s - dur_us - ba) // _US + 1  # first integer second strictly after s - dur - after
            b = -((-e - bb) // _US)  # first integer second not before e + before
            if a < hi and b > lo:
                raw.append((a, b))
    raw.sort()
    merged: list[tuple[int, int]] = []
    for a, b in raw:
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def _subtract(allowed: Sequence[tuple[int, int]], blocked: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``allowed`` minus ``blocked``; both sorted, disjoint, half-open."""
    out: list[tuple[int, int]] = []
    j, nb = 0, len(blocked)
    for a, b in allowed:
        cur = a
        while j < nb and blocked[j][1] <= cur:
            j += 1
        k = j
        while k < nb and blocked[k][0] < b and cur < b:
            ba_, bb_ = blocked[k]
            if ba_ > cur:
                out.append((cur, ba_))
            cur = max(cur, bb_)
            if bb_ > b:
                break
            k += 1
        j = k
        if cur < b:
            out.append((cur, b))
    return out


def _window_seconds(windows: Iterable[Window]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((w.start_minute * 60, w.end_minute * 60) for w in windows))


def compute_slots(query: SlotQuery) -> list[Interval]:
    """Bookable slots for ``query``, sorted, unique, as aware UTC intervals. Raises :class:`RuleErrors`."""
    q = query
    errors = _validate_parameters(q)
    bookings = _intervals_us(q.bookings, "bookings", errors)
    busy = _intervals_us(q.busy, "busy", errors)
    if errors:
        raise RuleErrors(errors)
    tutor_zone = zone_or_none(q.rules.zone)
    viewer_zone = zone_or_none(q.viewer_zone)
    assert tutor_zone is not None and viewer_zone is not None  # validated above

    dur = q.duration * 60
    step = q.step * 60
    now_us = _utc_us(q.now)
    earliest = _ceil_seconds(now_us + q.notice * 60 * _US)
    latest = (now_us + q.horizon_days * _DAY * _US) // _US  # inclusive
    if latest < earliest:
        return []

    span_lo, span_hi = earliest - 4 * _DAY, latest + 4 * _DAY
    tutor = _Offsets(tutor_zone, span_lo, span_hi)
    viewer = tutor if q.viewer_zone == q.rules.zone else _Offsets(viewer_zone, span_lo, span_hi)

    # Instants whose viewer-local date is in [date_from, date_to], clamped to [earliest, latest].
    wall_from = (q.date_from.toordinal() - _EPOCH_ORDINAL) * _DAY
    wall_to = (q.date_to.toordinal() + 1 - _EPOCH_ORDINAL) * _DAY
    wall_from = max(wall_from, earliest - 2 * _DAY)
    wall_to = min(wall_to, latest + 2 * _DAY)
    if wall_from >= wall_to:
        return []
    shown: list[tuple[int, int]] = []
    for lo, hi, _ in viewer.wall_to_utc(wall_from, wall_to):
        lo, hi = max(lo, earliest), min(hi, latest + 1)
        if lo >= hi:
            continue
        if shown and shown[-1][1] == lo:
            shown[-1] = (shown[-1][0], hi)
        else:
            shown.append((lo, hi))
    if not shown:
        return []

    blocked = _blocked_starts(
        bookings, busy, dur=dur, before=q.buffer_before * 60, after=q.buffer_after * 60, lo=shown[0][0], hi=shown[-1][1]
    )
    allowed = _subtract(shown, blocked)
    if not allowed:
        return []
    allowed_starts = [a for a, _ in allowed]
    allowed_ends = [b for _, b in allowed]
    n_allowed = len(allowed)
    first_t, last_t = allowed_starts[0], allowed_ends[-1]

    # Tutor-local dates as day numbers since 1970-01-01 (wall seconds // 86400).
    first_day = (first_t - _MARGIN) // _DAY
    last_day = (last_t + _MARGIN) // _DAY
    full_days: set[int] = set()
    if q.max_per_day is not None:
        lo_count, hi_count = first_day * _DAY - _MARGIN, (last_day + 1) * _DAY + _MARGIN
        per_day: Counter[int] = Counter()
        for start_us, _ in bookings:
            s = start_us // _US
            if lo_count <= s < hi_count:
                per_day[(s + tutor.offset_at(s)) // _DAY] += 1
        full_days = {d for d, c in per_day.items() if c >= q.max_per_day}

    weekly = {wd: _window_seconds(ws) for wd, ws in q.rules.days.items()}
    overrides = {
        o.date.toordinal() - _EPOCH_ORDINAL: (
            _window_seconds(o.windows)
            if o.replace
            else _window_seconds((*q.rules.days.get(o.date.weekday(), ()), *o.windows))
        )
        for o in q.overrides
    }

    starts: list[int] = []
    for day in range(first_day, last_day + 1):
        if day in full_days:
            continue
        windows = overrides.get(day)
        if windows is None:
            windows = weekly.get((day + _EPOCH_WEEKDAY) % 7, ())
        base = day * _DAY
        for ws, we in windows:
            a, b = base + ws, base + we
            pieces = tutor.wall_to_utc(a, b)
            if not pieces:  # the whole window is in a gap
                continue
            if len(pieces) == 1:
                run_end: list[int] = [pieces[0][1]]
            else:
                # End of the run of contiguous pieces each piece is in (a slot must fit in one run).
                run_end = [0] * len(pieces)
                end = pieces[-1][1]
                for i in range(len(pieces) - 1, -1, -1):
                    if i + 1 < len(pieces) and pieces[i][1] != pieces[i + 1][0]:
                        end = pieces[i][1]
                    run_end[i] = end
            for (lo, hi, o), stop in zip(pieces, run_end, strict=True):
                x, y = lo, min(hi, stop - dur + 1)
                if x >= y:
                    continue
                residue = (a - o) % step  # wall time = t + o must be a + k * step
                k = bisect_right(allowed_ends, x)
                while k < n_allowed and allowed_starts[k] < y:
                    s0 = max(x, allowed_starts[k])
                    e0 = min(y, allowed_ends[k])
                    first = s0 + (residue - s0) % step
                    if first < e0:
                        starts.extend(range(first, e0, step))
                    k += 1

    starts.sort()
    epoch, second = _EPOCH, _ONE_SECOND
    out: list[Interval] = []
    previous = None
    for t in starts:
        if t != previous:
            out.append(Interval(epoch + t * second, epoch + (t + dur) * second))
            previous = t
    return out


def to_zone(slots: Iterable[Interval], zone: str) -> list[tuple[datetime, datetime]]:
    """Slots as ``(start, end)`` in ``zone``, each with the offset in force at that instant.

    The second occurrence of a repeated wall time gets ``fold=1`` (``astimezone`` does that), so
    the local values convert back to the same UTC instants. Raises :class:`RuleErrors` for an
    unknown zone.
    """
    tz = zone_or_none(zone)
    if tz is None:
        raise RuleErrors(validate_zone(zone, "zone"))
    return [(s.start.astimezone(tz), s.end.astimezone(tz)) for s in slots]
