"""Weekly availability in UTC hour buckets: what search filters on "Tuesday evenings".

A *bucket* is an hour of the UTC week: ``weekday * 24 + hour`` (0 = Monday 00:00-01:00 UTC, 167 =
Sunday 23:00-24:00 UTC). A tutor's document holds every bucket that one of their windows touches
on the real dates of the next ``WEEKS`` weeks (weekly rules in the tutor's zone, date overrides
applied): a union over real dates, so a daylight-saving change inside that period shows both
offsets, and a half-hour zone touches both hours around its half hour.

A viewer's "day and time of day" choice (``days``, ``times`` in the viewer's zone) becomes the
buckets it touches at the viewer's current UTC offset; a tutor matches when the two sets meet.
Bucket precision is an hour: a window and a choice that only share a UTC hour without overlapping
in minutes (a half-hour zone against a whole-hour one) still match.

Documents go stale only when a zone's offset changes: ``zones_changing`` finds the zones with a
change near the edges of the period, and ``search.sync`` re-indexes their tutors daily.

Pure, apart from :func:`availability_buckets`, which bulk-loads rules and overrides for many tutors
in a few queries (no N+1).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import Text, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

WEEKS = 4
HOURS_PER_WEEK = 168
MASK_BITS = 56  # three 56-bit integers hold the 168 buckets (each fits a signed 64-bit column)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Times of day in the viewer's zone, [start, end) in hours; night runs into the next morning.
TIMES: Mapping[str, tuple[int, int]] = {
    "morning": (6, 12),
    "afternoon": (12, 17),
    "evening": (17, 22),
    "night": (22, 30),
}
_EPOCH_HOUR_BUCKET = 3 * 24  # 1970-01-01 was a Thursday
_CHUNK = 1000
_SCAN_ABOVE = 5000  # tutors: more than this, read the availability tables whole

Windows = tuple[tuple[int, int], ...]  # (start minute, end minute) within a local date, end up to 1440


@lru_cache(maxsize=4096)
def _minutes_of(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    return hours * 60 + minutes


def _minutes(text: Any) -> int:
    return _minutes_of(str(text))


def parse_windows(raw: Any) -> Windows:
    """``[["18:00", "21:00"], ...]`` as minute pairs; an end of "00:00"/"24:00" is midnight at the
    end of the date. Malformed entries are skipped (the editor validates; search never fails)."""
    out: list[tuple[int, int]] = []
    for item in raw or ():
        try:
            start, end = (_minutes(v) for v in item)
        except (TypeError, ValueError):
            continue
        end = end or 1440
        if 0 <= start < end <= 1440:
            out.append((start, end))
    return tuple(sorted(out))


def weekly_key(weekly: Mapping[str, Any] | None) -> tuple[Windows, ...]:
    """The weekly JSON ({"0": [["18:00", "21:00"]], ...}, 0 = Monday) as a hashable week."""
    days = weekly or {}
    return tuple(parse_windows(days.get(str(d)) or days.get(d)) for d in range(7))  # type: ignore[call-overload]


def _bucket_of_hour(epoch_hour: int) -> int:
    return (epoch_hour + _EPOCH_HOUR_BUCKET) % HOURS_PER_WEEK


def _span_buckets(start_s: int, end_s: int) -> Iterable[int]:
    """Buckets touched by the UTC span [start_s, end_s) in epoch seconds."""
    first, last = start_s // 3600, (end_s - 1) // 3600
    for hour in range(first, min(last, first + HOURS_PER_WEEK - 1) + 1):
        yield _bucket_of_hour(hour)


@lru_cache(maxsize=4096)
def _zone_days(zone: str, start: date, days: int) -> tuple[tuple[date, int | None], ...]:
    """Every local date of the period with its UTC offset in seconds, or None when the offset
    changes during that date (those dates are converted instant by instant)."""
    tz = ZoneInfo(zone)
    out = []
    for i in range(days):
        d = start + timedelta(days=i)
        begin = datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(d + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        offset = datetime.combine(d, time(12), tzinfo=tz).utcoffset()
        seconds = int(offset.total_seconds()) if offset is not None else 0
        out.append((d, seconds if (end - begin) == timedelta(days=1) and _steady(tz, d) else None))
    return tuple(out)


def _steady(tz: ZoneInfo, d: date) -> bool:
    first = datetime.combine(d, time(0), tzinfo=tz).utcoffset()
    last = datetime.combine(d, time(23, 59), tzinfo=tz).utcoffset()
    return first == last


def _local_to_utc_s(d: date, minute: int, tz: ZoneInfo) -> int:
    day = d + timedelta(days=minute // 1440)
    local = datetime.combine(day, time(minute % 1440 // 60, minute % 60), tzinfo=tz)
    return int(local.timestamp())


@lru_cache(maxsize=65536)
def _weekly_buckets(zone: str, week: tuple[Windows, ...], start: date, weeks: int) -> frozenset[int]:
    return frozenset(_buckets(zone, week, {}, start, weeks))


def _buckets(
    zone: str, week: Sequence[Windows], overrides: Mapping[date, Windows], start: date, weeks: int
) -> set[int]:
    found: set[int] = set()
    for d, offset in _zone_days(zone, start, weeks * 7):
        windows = overrides.get(d, week[d.weekday()])
        if windows:
            found.update(_date_buckets(zone, d, offset, windows))
    return found


@lru_cache(maxsize=65536)
def _date_buckets(zone: str, d: date, offset: int | None, windows: Windows) -> frozenset[int]:
    """The buckets of one local date's windows (tutors share zones and windows: cached)."""
    found: set[int] = set()
    midnight = (d.toordinal() - 719163) * 86400  # epoch seconds of d at 00:00 UTC
    for s, e in windows:
        if offset is not None:
            a, b = midnight + s * 60 - offset, midnight + e * 60 - offset
        else:  # the offset changes on this date: convert each end on its own
            tz = ZoneInfo(zone)
            a, b = _local_to_utc_s(d, s, tz), _local_to_utc_s(d, e, tz)
        if b > a:
            found.update(_span_buckets(a, b))
    return frozenset(found)


def tutor_buckets(
    zone: str | None,
    weekly: Mapping[str, Any] | None,
    overrides: Mapping[date, Windows] | None = None,
    *,
    today: date,
    weeks: int = WEEKS,
    week: tuple[Windows, ...] | None = None,
) -> tuple[int, ...]:
    """The sorted UTC buckets of a tutor's windows on the dates ``today`` .. ``today + weeks``.

    ``overrides`` maps local dates to the windows that apply on them instead of the weekly ones
    (already merged: a day off is an empty tuple). An unknown zone gives no buckets; ``week`` is
    ``weekly_key(weekly)`` when the caller has it already."""
    if not zone or not _known_zone(zone):
        return ()
    if week is None:
        week = weekly_key(weekly)
    end = today + timedelta(days=weeks * 7)
    relevant = {d: w for d, w in (overrides or {}).items() if today <= d < end}
    if not relevant:
        return tuple(sorted(_weekly_buckets(zone, week, today, weeks)))
    return tuple(sorted(_buckets(zone, week, relevant, today, weeks)))


@lru_cache(maxsize=1024)
def _known_zone(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):
        return False
    return True


def viewer_buckets(days: Sequence[str], times: Sequence[str], zone: str, *, now: datetime) -> frozenset[int]:
    """The UTC buckets of the viewer's choice: every chosen day (all days when none) at every chosen
    time of day (the whole day when none), in ``zone`` at its UTC offset at ``now``. Unknown names
    are the caller's to refuse; they are ignored here."""
    offset = now.astimezone(ZoneInfo(zone)).utcoffset()
    shift = int(offset.total_seconds()) if offset is not None else 0
    day_numbers = [DAYS.index(d) for d in days if d in DAYS] or list(range(7))
    ranges = [TIMES[t] for t in times if t in TIMES] or [(0, 24)]
    found: set[int] = set()
    for day in day_numbers:
        for a, b in ranges:
            # Seconds from Monday 00:00 UTC (negative or past the week's end wrap around).
            start = (day * 24 + a) * 3600 - shift
            end = (day * 24 + b) * 3600 - shift
            found.update(hour % HOURS_PER_WEEK for hour in range(start // 3600, (end - 1) // 3600 + 1))
    return frozenset(found)


def to_mask(buckets: Iterable[int]) -> tuple[int, int, int]:
    """The buckets as three 56-bit integers (bucket b is bit b % 56 of part b // 56)."""
    parts = [0, 0, 0]
    for b in buckets:
        if 0 <= b < HOURS_PER_WEEK:
            parts[b // MASK_BITS] |= 1 << (b % MASK_BITS)
    return parts[0], parts[1], parts[2]


def zones_changing(zones: Iterable[str], *, today: date, weeks: int = WEEKS, margin_days: int = 2) -> set[str]:
    """Zones whose offset changes near either edge of the bucket period (a change just left the
    period or is about to enter it): their tutors' buckets need recomputing."""
    changing: set[str] = set()
    for zone in set(zones):
        try:
            tz = ZoneInfo(zone)
        except (ValueError, KeyError, OSError):
            continue
        for edge in (today, today + timedelta(days=weeks * 7)):
            offsets = {
                datetime.combine(edge + timedelta(days=i), time(12), tzinfo=tz).utcoffset()
                for i in range(-margin_days, margin_days + 1)
            }
            if len(offsets) > 1:
                changing.add(zone)
    return changing


# ---- bulk loading --------------------------------------------------------------------------


async def availability_buckets(
    session: AsyncSession, tutor_ids: Sequence[uuid.UUID], *, today: date | None = None
) -> dict[uuid.UUID, tuple[int, ...]]:
    """Buckets of many tutors (user ids) in two queries per thousand tutors: rules, then overrides
    within the period. Tutors without availability are absent from the result."""
    from scheduling.models import Availability, AvailabilityOverride

    today = today or datetime.now(UTC).date()
    end = today + timedelta(days=WEEKS * 7)
    out: dict[uuid.UUID, tuple[int, ...]] = {}
    ids = list(dict.fromkeys(tutor_ids))
    rules_table, overrides_table = Availability.__table__, AvailabilityOverride.__table__
    # Many tutors (a full reindex): one scan of each table beats thousands of index lookups.
    everyone = len(ids) > _SCAN_ABOVE
    chunks = [ids] if everyone else [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]
    wanted = set(ids) if everyone else None
    for part in chunks:
        # Core columns, JSON as text decoded by msgspec: this runs for every tutor on a reindex.
        statement = select(rules_table.c.tutor_id, rules_table.c.zone, type_coerce(rules_table.c.weekly, Text))
        if not everyone:
            statement = statement.where(rules_table.c.tutor_id.in_(part))
        rules = [
            (tutor_id, zone, _json(weekly))
            for tutor_id, zone, weekly in await session.execute(statement)
            if wanted is None or tutor_id in wanted
        ]
        if not rules:
            continue
        with_rules = [tutor_id for tutor_id, _zone, _weekly in rules]
        overrides: dict[uuid.UUID, dict[date, Windows]] = {}
        statement = select(
            overrides_table.c.tutor_id,
            overrides_table.c.on_date,
            type_coerce(overrides_table.c.windows, Text),
            overrides_table.c.replace,
        ).where(overrides_table.c.on_date >= today, overrides_table.c.on_date < end)
        if not everyone:
            statement = statement.where(overrides_table.c.tutor_id.in_(with_rules))
        rows = await session.execute(statement)
        raw_overrides = [
            (tutor_id, on_date, _json(windows), replace)
            for tutor_id, on_date, windows, replace in rows
            if wanted is None or tutor_id in wanted
        ]
        weeks = {tutor_id: weekly_key(weekly) for tutor_id, _zone, weekly in rules}
        for tutor_id, on_date, windows, replace in raw_overrides:
            if tutor_id not in weeks:  # overrides without weekly rules give no buckets
                continue
            extra = parse_windows(windows)
            merged = extra if replace else tuple(sorted(weeks[tutor_id][on_date.weekday()] + extra))
            overrides.setdefault(tutor_id, {})[on_date] = merged
        for tutor_id, zone, weekly in rules:
            out[tutor_id] = tutor_buckets(zone, weekly, overrides.get(tutor_id), today=today, week=weeks[tutor_id])
    return out


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            return None
    return value


async def availability_changed_at(session: AsyncSession) -> dict[uuid.UUID, datetime]:
    """When each tutor's availability (rules or an override) last changed (for ``reconcile``)."""
    from sqlalchemy import func

    from scheduling.models import Availability, AvailabilityOverride

    changed: dict[uuid.UUID, datetime] = {}
    for tutor_id, updated in await session.execute(select(Availability.tutor_id, Availability.updated_at)):
        changed[tutor_id] = updated
    overrides = select(AvailabilityOverride.tutor_id, func.max(AvailabilityOverride.updated_at)).group_by(
        AvailabilityOverride.tutor_id
    )
    for tutor_id, updated in await session.execute(overrides):
        if updated is not None and (tutor_id not in changed or updated > changed[tutor_id]):
            changed[tutor_id] = updated
    return changed


async def tutors_in_zones(session: AsyncSession) -> dict[str, list[uuid.UUID]]:
    """Tutors (user ids) with availability, by zone."""
    from scheduling.models import Availability

    by_zone: dict[str, list[uuid.UUID]] = {}
    for tutor_id, zone in await session.execute(select(Availability.tutor_id, Availability.zone)):
        by_zone.setdefault(zone, []).append(tutor_id)
    return by_zone
