"""Availability rules: a tutor's weekly wall-clock windows, date overrides, and their validation.

Pure data and pure functions (standard library only, no I/O, no app imports), shared by the slot
engine (``scheduling.slots``) and, later, the web layer.

Wall-clock model
----------------
A :class:`Window` is a span of *wall-clock* time on one local date in the tutor's IANA zone,
half-open: ``[start, end)``. ``end == time(0, 0)`` means midnight at the *end* of the date
("24:00"), so ``Window(time(20), time(0))`` is 20:00-24:00 and ``Window(time(0), time(0))`` is
the whole date. Windows on the same date must not overlap (touching is fine: 18:00-19:00 and
19:00-20:00) and must not be inverted or empty. Times are naive (``tzinfo is None``) and whole
minutes. What a window means in real time, across daylight-saving changes, is defined in
``scheduling.slots``.

Errors are data, not text: validation returns :class:`RuleError` values carrying a stable
``code`` (see ``ERROR_CODES``), where it happened, and the offending values as plain strings.
The web layer maps codes to translated messages; nothing here is user-facing text.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MINUTES_PER_DAY = 24 * 60

#: Every error code validation can return (the web layer keeps one message per code).
ERROR_CODES: frozenset[str] = frozenset(
    {
        "unknown_zone",  # not an IANA zone name (or the machine-dependent "localtime")
        "inverted",  # window ends at or before it starts
        "overlap",  # two windows on the same date overlap
        "not_whole_minute",  # window time has seconds or microseconds
        "aware_time",  # window time carries a tzinfo; windows are wall-clock times
        "bad_weekday",  # weekly rule key not in 0..6 (0 = Monday)
        "bad_format",  # text is not "HH:MM-HH:MM"
        "duplicate_override",  # two overrides for the same date
        "horizon_too_long",  # booking horizon above MAX_HORIZON_DAYS
        "negative",  # a minutes/days value below zero
        "not_positive",  # duration or step not above zero
        "bad_max_per_day",  # maximum lessons per day below 1
        "naive_datetime",  # an instant without a time zone
        "inverted_interval",  # a booking or busy interval ends before it starts
        "inverted_range",  # viewer date range ends before it starts
    }
)

# Zone keys that resolve on this machine but are not zones a user may choose: "localtime" follows
# the host's /etc/localtime (that would make results depend on the machine), "posixrules" is a
# tzcode implementation detail.
_MACHINE_ZONES = frozenset({"localtime", "posixrules"})


@dataclass(frozen=True, slots=True)
class RuleError:
    """One validation problem: a stable ``code``, where it is (``where``), the offending values."""

    code: str
    where: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:  # for logs and test failures, never shown to users
        shown = ", ".join(self.values)
        return f"{self.code} at {self.where}" + (f": {shown}" if shown else "")


class RuleErrors(ValueError):
    """Raised when input is invalid; ``errors`` holds every problem found, not just the first."""

    def __init__(self, errors: Iterable[RuleError]) -> None:
        self.errors: tuple[RuleError, ...] = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(e.code for e in self.errors)


@dataclass(frozen=True, slots=True)
class Window:
    """Wall-clock ``[start, end)`` on one local date; ``end == time(0, 0)`` means 24:00."""

    start: time
    end: time

    @property
    def start_minute(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_minute(self) -> int:
        """Minutes after local midnight; 1440 when the window runs to the end of the date."""
        minutes = self.end.hour * 60 + self.end.minute
        return minutes or MINUTES_PER_DAY

    def __str__(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"


@dataclass(frozen=True)
class WeeklyRules:
    """The tutor's IANA ``zone`` and, per weekday (0 = Monday ... 6 = Sunday), its windows."""

    zone: str
    days: Mapping[int, tuple[Window, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Override:
    """Availability for one local ``date`` in the tutor's zone.

    ``replace=True`` (default): ``windows`` replace the weekly windows of that date, so an empty
    tuple is a day off / holiday. ``replace=False``: ``windows`` are extra hours added to the
    weekly windows of that date (they must not overlap them).
    """

    date: date
    windows: tuple[Window, ...] = ()
    replace: bool = True


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_window(text: str) -> Window:
    """Parse ``"HH:MM-HH:MM"`` (``24:00`` allowed as an end). Raises :class:`RuleErrors`.

    Only the format is checked here; :func:`validate_windows` checks order and overlaps.
    """
    match = _WINDOW_RE.match(text)
    if match:
        sh, sm, eh, em = (int(g) for g in match.groups())
        start_ok = sh < 24 and sm < 60
        end_ok = (eh < 24 and em < 60) or (eh == 24 and em == 0)
        if start_ok and end_ok:
            return Window(time(sh, sm), time(eh % 24, em))
    raise RuleErrors([RuleError("bad_format", "window", (text,))])


def parse_windows(text: str) -> tuple[Window, ...]:
    """Parse a comma-separated list such as ``"09:00-12:00, 14:00-18:00"`` (empty -> no windows)."""
    parts = [p for p in text.split(",") if p.strip()]
    found: list[Window] = []
    errors: list[RuleError] = []
    for part in parts:
        try:
            found.append(parse_window(part))
        except RuleErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise RuleErrors(errors)
    return tuple(found)


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _MACHINE_ZONES


@lru_cache(maxsize=512)
def zone_or_none(name: str) -> ZoneInfo | None:
    """The ``ZoneInfo`` for an IANA name, or ``None`` if it is not a zone a user may choose."""
    if not isinstance(name, str) or name not in _known_zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def validate_zone(name: str, where: str = "zone") -> list[RuleError]:
    return [] if zone_or_none(name) is not None else [RuleError("unknown_zone", where, (str(name),))]


def validate_windows(windows: Iterable[Window], where: str = "windows") -> list[RuleError]:
    """Check one date's windows: wall-clock whole minutes, not inverted or empty, no overlaps."""
    errors: list[RuleError] = []
    valid: list[Window] = []
    for w in windows:
        bad = False
        for t in (w.start, w.end):
            if t.tzinfo is not None:
                errors.append(RuleError("aware_time", where, (t.isoformat(),)))
                bad = True
            if t.second or t.microsecond:
                errors.append(RuleError("not_whole_minute", where, (t.isoformat(),)))
                bad = True
        if bad:
            continue
        if w.end_minute <= w.start_minute:
            errors.append(RuleError("inverted", where, (str(w),)))
            continue
        valid.append(w)
    valid.sort(key=lambda w: (w.start_minute, w.end_minute))
    for before, after in itertools.pairwise(valid):
        if after.start_minute < before.end_minute:
            errors.append(RuleError("overlap", where, (str(before), str(after))))
    return errors


def validate_rules(rules: WeeklyRules) -> list[RuleError]:
    """Check the zone and every weekday's windows."""
    errors = validate_zone(rules.zone, "zone")
    for weekday, windows in rules.days.items():
        if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
            errors.append(RuleError("bad_weekday", "days", (str(weekday),)))
            continue
        errors.extend(validate_windows(windows, f"days.{weekday}"))
    return errors


def validate_overrides(rules: WeeklyRules, overrides: Iterable[Override]) -> list[RuleError]:
    """Check each override's windows; extra (``replace=False``) windows together with the weekly ones."""
    errors: list[RuleError] = []
    seen: set[date] = set()
    for o in overrides:
        where = f"overrides.{o.date.isoformat()}"
        if o.date in seen:
            errors.append(RuleError("duplicate_override", where, (o.date.isoformat(),)))
            continue
        seen.add(o.date)
        windows = tuple(o.windows)
        if not o.replace:
            windows = tuple(rules.days.get(o.date.weekday(), ())) + windows
        errors.extend(validate_windows(windows, where))
    return errors


def windows_for(rules: WeeklyRules, overrides: Mapping[date, Override], day: date) -> tuple[Window, ...]:
    """The windows that apply on a local ``day``: the override's, else the weekly ones."""
    weekly = tuple(rules.days.get(day.weekday(), ()))
    o = overrides.get(day)
    if o is None:
        return weekly
    return tuple(o.windows) if o.replace else weekly + tuple(o.windows)
