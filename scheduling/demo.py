"""Demo availability: every demo tutor gets believable hours in their own zone (the tutor's account
zone), so the demo's profiles, week pickers and search show real times.

Weekday evenings (sometimes an afternoon too), weekend mornings, a holiday a few weeks ahead,
sometimes extra hours on one morning, a mix of breaks, notice, booking windows and daily limits,
some tutors booking on request and every cancellation policy. Many approved tutors also have a
few confirmed lessons in the next two weeks with demo students (on different days, inside their
hours, with the blocked range widened by their breaks, so they never overlap).

Bulk loading only (``marketplace.demo.bulk_load``, a chunk of tutors at a time):
``marketplace demo --tutors 100000`` stays fast. Idempotent: tutors that already have availability
are left alone.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.db import utcnow
from marketplace.tutors.models import ProfileStatus, TutorProfile
from scheduling.models import (
    FREE_CANCEL_HOURS,
    LATE_REFUND_PERCENTS,
    Availability,
    AvailabilityOverride,
    Booking,
    BookingKind,
    BookingMode,
    BookingStatus,
)

CHUNK_TUTORS = 10_000  # tutors generated and loaded at a time
EVENINGS = (("17:00", "21:00"), ("18:00", "21:00"), ("16:30", "20:30"), ("18:00", "22:00"), ("17:30", "20:00"))
AFTERNOONS = (("13:00", "15:00"), ("14:00", "16:00"))
WEEKEND_MORNINGS = (("09:00", "12:00"), ("10:00", "13:00"), ("09:30", "12:30"))
EXTRA_MORNING = ("08:00", "10:00")  # before every weekday window above, so never overlapping
HOLIDAY_NOTES = ("Holiday", "Concert tour", "Family day", "Exam jury", "Public holiday")
CLARA = {
    "weekly": {str(d): [["16:00", "20:00"]] for d in range(5)} | {"5": [["10:00", "13:00"]]},
    "buffer_before": 10,
    "buffer_after": 10,
    "notice_minutes": 12 * 60,
    "horizon_days": 60,
    "max_per_day": 5,
    "booking_mode": BookingMode.instant,
    "free_cancel_hours": 24,
    "late_refund_percent": 50,
}


def _weekly(rng: random.Random) -> dict[str, list[list[str]]]:
    evening = list(rng.choice(EVENINGS))
    weekdays = rng.sample(range(5), k=rng.choice((3, 4, 5, 5)))
    weekly: dict[str, list[list[str]]] = {}
    afternoon = list(rng.choice(AFTERNOONS)) if rng.random() < 0.3 else None
    for d in sorted(weekdays):
        weekly[str(d)] = [afternoon, evening] if afternoon and d % 2 == 0 else [evening]
    weekly["5"] = [list(rng.choice(WEEKEND_MORNINGS))]
    if rng.random() < 0.4:
        weekly["6"] = [list(rng.choice(WEEKEND_MORNINGS))]
    return weekly


def _rules(rng: random.Random) -> dict[str, Any]:
    return {
        "buffer_before": rng.choice((0, 0, 5, 10, 15)),
        "buffer_after": rng.choice((0, 5, 10, 10, 15)),
        "notice_minutes": rng.choice((2, 6, 12, 12, 24)) * 60,
        "horizon_days": rng.choice((30, 60, 60, 60, 90)),
        "max_per_day": rng.choice((None, None, 3, 4, 6)),
        "booking_mode": BookingMode.request if rng.random() < 0.2 else BookingMode.instant,
        "free_cancel_hours": rng.choice(FREE_CANCEL_HOURS),
        "late_refund_percent": rng.choice(LATE_REFUND_PERCENTS),
    }


def _minutes(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    return hours * 60 + minutes


AVAILABILITY, OVERRIDES, BOOKINGS = Availability.__table__, AvailabilityOverride.__table__, Booking.__table__
NEXT_DAYS = tuple(timedelta(days=i) for i in range(1, 15))  # lessons in the next two weeks


def _lessons(
    rng: random.Random,
    *,
    count: int,
    zone: ZoneInfo,
    today: date,
    weekly: dict[str, list[list[str]]],
    blocked_days: set[date],
    duration: int,
) -> list[tuple[datetime, datetime]]:
    """Up to ``count`` lessons (UTC start, end) in the next two weeks, one per day, inside the hours."""
    weekdays = {int(key) for key in weekly}
    days = [day for day in (today + step for step in NEXT_DAYS) if day.weekday() in weekdays]
    out = []
    for day in sorted(rng.sample(days, k=min(count, len(days)))):
        if day in blocked_days:
            continue
        start_text, end_text = rng.choice(weekly[str(day.weekday())])
        first, last = _minutes(start_text), _minutes(end_text) - duration
        if last < first:
            continue
        minute = first + 30 * rng.randint(0, (last - first) // 30)
        local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
        start = local.astimezone(UTC)
        out.append((start, start + timedelta(minutes=duration)))
    return out


async def demo_availability(session: AsyncSession, *, rng: random.Random) -> tuple[int, int]:
    """Availability for every demo tutor that has none; returns (tutors, future lessons) created."""
    from marketplace.demo import DEMO_DOMAIN, STUDENT_EMAIL, TUTOR_EMAIL, Batch, bulk_load

    price = TutorProfile.draft[("durations", 0, "price")].as_integer()
    minutes = TutorProfile.draft[("durations", 0, "minutes")].as_integer()
    currency = TutorProfile.draft["currency"].as_string()
    tutors = (
        await session.execute(
            select(User.id, User.email, User.timezone, TutorProfile.status, minutes, price, currency)
            .outerjoin(TutorProfile, TutorProfile.user_id == User.id)
            .outerjoin(Availability, Availability.tutor_id == User.id)
            .where(User.role == Role.tutor, User.email.like(f"%@{DEMO_DOMAIN}"), Availability.id.is_(None))
            .order_by(User.email)
        )
    ).all()
    if not tutors:
        return 0, 0
    students = (
        await session.execute(
            select(User.id, User.email)
            .where(User.role == Role.student, User.email.like(f"%@{DEMO_DOMAIN}"))
            .order_by(User.email)
        )
    ).all()
    student_ids = [sid for sid, _email in students]
    sam = next((sid for sid, email in students if email == STUDENT_EMAIL), None)
    lessons_created = [0]

    def batches() -> Iterator[Batch]:
        now = utcnow()
        zones: dict[str, tuple[ZoneInfo, date]] = {}  # zone name -> (zone, today there)
        availability: list[dict[str, Any]] = []
        overrides: list[dict[str, Any]] = []
        bookings: list[dict[str, Any]] = []
        for tutor_id, email, zone_name, status, lesson_minutes, lesson_price, lesson_currency in tutors:
            if len(availability) >= CHUNK_TUTORS:
                yield [(AVAILABILITY, availability), (OVERRIDES, overrides), (BOOKINGS, bookings)]
                availability, overrides, bookings = [], [], []
            known = zones.get(zone_name)
            if known is None:
                zone = ZoneInfo(zone_name)
                known = zones[zone_name] = (zone, now.astimezone(zone).date())
            zone, today = known
            is_clara = email == TUTOR_EMAIL
            weekly = CLARA["weekly"] if is_clara else _weekly(rng)
            rules = {k: v for k, v in CLARA.items() if k != "weekly"} if is_clara else _rules(rng)
            availability.append(
                {
                    "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                    "tutor_id": tutor_id,
                    "zone": zone_name,
                    "weekly": weekly,
                    **rules,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            holiday = today + timedelta(days=rng.randint(10, 40))
            taken = {holiday}
            overrides.append(
                {
                    "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                    "tutor_id": tutor_id,
                    "on_date": holiday,
                    "windows": [],
                    "replace": True,
                    "note": rng.choice(HOLIDAY_NOTES),
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if rng.random() < 0.3:
                extra = today + timedelta(days=rng.randint(3, 20))
                if extra not in taken and extra.weekday() < 5:
                    taken.add(extra)
                    overrides.append(
                        {
                            "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                            "tutor_id": tutor_id,
                            "on_date": extra,
                            "windows": [list(EXTRA_MORNING)],
                            "replace": False,
                            "note": "",
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
            if status != ProfileStatus.approved or not student_ids or not lesson_minutes or lesson_price is None:
                continue
            count = 3 if is_clara else rng.choice((0, 0, 0, 1, 2))
            lessons = _lessons(
                rng, count=count, zone=zone, today=today, weekly=weekly, blocked_days=taken, duration=lesson_minutes
            )
            for index, (start, end) in enumerate(lessons):
                student = sam if is_clara and index == 0 and sam else rng.choice(student_ids)
                booked = now - timedelta(days=rng.randint(1, 10), minutes=rng.randint(0, 600))
                lessons_created[0] += 1
                bookings.append(
                    {
                        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                        "tutor_id": tutor_id,
                        "student_id": student,
                        "starts_at": start,
                        "ends_at": end,
                        "blocked_from": start - timedelta(minutes=rules["buffer_before"]),
                        "blocked_until": end + timedelta(minutes=rules["buffer_after"]),
                        "status": BookingStatus.confirmed,
                        "kind": BookingKind.lesson,
                        "price_amount": lesson_price,
                        "currency": lesson_currency or "EUR",
                        "paid_at": booked,
                        "confirmed_at": booked,
                        "created_at": booked,
                        "updated_at": booked,
                    }
                )
        yield [(AVAILABILITY, availability), (OVERRIDES, overrides), (BOOKINGS, bookings)]

    await bulk_load(session, batches())
    return len(tutors), lessons_created[0]
