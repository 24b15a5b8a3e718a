"""From stored availability to the slot engine: load a tutor's rules, overrides, active bookings
and external busy times and build a :class:`~scheduling.slots.SlotQuery`.

This is the one place that reads availability for slot computation; the slots API, the profile's
week picker, the booking service (which re-checks a chosen slot inside its write transaction) and
search's availability buckets all go through it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduling.models import ACTIVE_STATUSES, Availability, AvailabilityOverride, Booking, ExternalBusy
from scheduling.rules import Override, WeeklyRules, Window
from scheduling.slots import Interval, SlotQuery, compute_slots


def _time(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    return time(0, 0) if hours == 24 else time(hours, minutes)


def windows_from_json(raw: Iterable[Any]) -> tuple[Window, ...]:
    """``[["18:00", "21:00"], ...]`` as windows ("24:00" as an end is midnight)."""
    return tuple(Window(_time(start), _time(end)) for start, end in raw)


def windows_to_json(windows: Iterable[Window]) -> list[list[str]]:
    def text(t: time, end: bool) -> str:
        return "24:00" if end and t == time(0, 0) else t.strftime("%H:%M")

    return [[text(w.start, False), text(w.end, True)] for w in windows]


def weekly_rules(avail: Availability) -> WeeklyRules:
    days: Mapping[str, Any] = avail.weekly or {}
    return WeeklyRules(zone=avail.zone, days={int(k): windows_from_json(v) for k, v in days.items() if v})


def overrides_of(rows: Iterable[AvailabilityOverride]) -> tuple[Override, ...]:
    return tuple(Override(date=r.on_date, windows=windows_from_json(r.windows), replace=r.replace) for r in rows)


@dataclass(frozen=True, slots=True)
class TutorCalendar:
    """Everything stored about one tutor's time, ready for :func:`query_for`."""

    availability: Availability
    overrides: tuple[Override, ...]
    bookings: tuple[Interval, ...]
    busy: tuple[Interval, ...]


async def load_calendar(
    session: AsyncSession,
    tutor_id: uuid.UUID,
    *,
    now: datetime,
    until: datetime | None = None,
    exclude_booking_id: uuid.UUID | None = None,
) -> TutorCalendar | None:
    """The tutor's availability with active bookings/holds and busy times from ``now`` (minus a day)
    to ``until`` (default: the horizon plus a day). ``None`` when the tutor has set no availability.

    Holds whose time ran out are not counted even before the expiry job marks them expired.
    ``exclude_booking_id`` leaves one booking out (rescheduling moves it).
    """
    avail = (await session.execute(select(Availability).where(Availability.tutor_id == tutor_id))).scalar_one_or_none()
    if avail is None:
        return None
    start = now - timedelta(days=1)
    end = until or now + timedelta(days=avail.horizon_days + 1)
    today = start.date() - timedelta(days=1)
    overrides = (
        await session.execute(
            select(AvailabilityOverride)
            .where(AvailabilityOverride.tutor_id == tutor_id, AvailabilityOverride.on_date >= today)
            .order_by(AvailabilityOverride.on_date)
        )
    ).scalars()
    booking_rows = await session.execute(
        select(Booking.id, Booking.starts_at, Booking.ends_at, Booking.status, Booking.hold_expires_at).where(
            Booking.tutor_id == tutor_id,
            Booking.status.in_(ACTIVE_STATUSES),
            Booking.ends_at > start,
            Booking.starts_at < end,
        )
    )
    bookings = tuple(
        Interval(s, e)
        for bid, s, e, status, hold_until in booking_rows
        if bid != exclude_booking_id and not (status == "held" and hold_until is not None and hold_until <= now)
    )
    busy_rows = await session.execute(
        select(ExternalBusy.starts_at, ExternalBusy.ends_at).where(
            ExternalBusy.tutor_id == tutor_id, ExternalBusy.ends_at > start, ExternalBusy.starts_at < end
        )
    )
    busy = tuple(Interval(s, e) for s, e in busy_rows)
    return TutorCalendar(avail, overrides_of(overrides), bookings, busy)


def query_for(
    cal: TutorCalendar, *, duration: int, now: datetime, viewer_zone: str, date_from: date, date_to: date
) -> SlotQuery:
    a = cal.availability
    return SlotQuery(
        rules=weekly_rules(a),
        duration=duration,
        now=now,
        viewer_zone=viewer_zone,
        date_from=date_from,
        date_to=date_to,
        overrides=cal.overrides,
        bookings=cal.bookings,
        busy=cal.busy,
        buffer_before=a.buffer_before,
        buffer_after=a.buffer_after,
        notice=a.notice_minutes,
        horizon_days=a.horizon_days,
        max_per_day=a.max_per_day,
        step=30 if duration % 30 == 0 else 15,
    )


async def tutor_slots(
    session: AsyncSession,
    tutor_id: uuid.UUID,
    *,
    duration: int,
    viewer_zone: str,
    date_from: date,
    date_to: date,
    now: datetime | None = None,
    exclude_booking_id: uuid.UUID | None = None,
) -> list[Interval]:
    """Bookable slots (UTC intervals) of one tutor; empty when no availability is set.

    Raises :class:`scheduling.rules.RuleErrors` for an invalid query (unknown viewer zone,
    inverted range); callers turn those into 400s.
    """
    now = now or datetime.now(UTC)
    cal = await load_calendar(session, tutor_id, now=now, exclude_booking_id=exclude_booking_id)
    if cal is None:
        return []
    return compute_slots(
        query_for(cal, duration=duration, now=now, viewer_zone=viewer_zone, date_from=date_from, date_to=date_to)
    )
