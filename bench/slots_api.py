"""Slots API benchmark: latency of ``GET /api/v1/tutors/{id}/slots`` for a busy tutor.

Run with ``.venv/bin/python bench/slots_api.py`` (or ``make bench-slots-api``); options:
``--requests``, ``--warmup``, ``--database-url`` (default: a fresh SQLite file in a temporary
directory; a PostgreSQL URL is emptied first, so never point it at data you want to keep).

The application runs in-process (the real ASGI app with every middleware: sessions, request
context, CSRF, security headers, compression) through httpx's ASGI transport on the same event
loop, one request after another, so the figures are the application's own time per request,
without network, server or load generator. The database is real (SQLite or PostgreSQL),
migrated with Alembic.

Scenario: an approved Europe/Berlin tutor with 3 windows every day (09:00-12:00, 13:00-17:00,
18:00-21:00), 20 date overrides (10 days off, 5 with extra hours, 5 with replaced hours), 300
confirmed 30-minute bookings (on the hour) and 100 external busy events over the next 8 weeks,
10-minute buffers, 12 hours' notice, a 60-day horizon and at most 8 lessons a day, viewed from America/New_York:

- ``week``: 7 days (what the profile's week picker asks for),
- ``8 weeks``: 56 days, the whole calendar in one call,
- ``profile page``: ``GET /tutors/{slug}`` with its week picker, for comparison.

Target: p95 <= 30 ms per slots request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_P95_MS = 30.0
TUTOR_ZONE = "Europe/Berlin"
VIEWER_ZONE = "America/New_York"
WINDOWS = [["09:00", "12:00"], ["13:00", "17:00"], ["18:00", "21:00"]]
BOOKING_HOURS = (9, 10, 11, 13, 14, 15, 16, 18, 19, 20)  # 30-minute lessons on the hour: with
# 10-minute buffers their blocked ranges never overlap (PostgreSQL's exclusion constraint holds)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, round(p / 100 * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def build_tutor(seed: int) -> tuple[uuid.UUID, str]:
    from marketplace.accounts.models import Role, User
    from marketplace.db import transaction, utcnow
    from marketplace.tutors.models import ProfileStatus, TutorProfile
    from scheduling.models import (
        Availability,
        AvailabilityOverride,
        Booking,
        BookingStatus,
        ExternalBusy,
        ExternalCalendar,
    )

    rng = random.Random(seed)
    berlin = ZoneInfo(TUTOR_ZONE)
    now = utcnow()
    today = now.astimezone(berlin).date()
    days = [today + timedelta(days=i) for i in range(1, 57)]
    doc = {
        "display_name": "Bea Bench",
        "headline": "Benchmark piano",
        "instruments": [{"slug": "piano", "levels": ["beginner"]}],
        "age_groups": ["adults"],
        "languages": ["en"],
        "online": True,
        "currency": "EUR",
        "durations": [{"minutes": 60, "price": 5000}, {"minutes": 45, "price": 4000}],
        "trial": None,
    }
    async with transaction() as session:
        tutor = User(email="bench-tutor@example.com", password_hash="x", display_name="Bea Bench", role=Role.tutor)
        student = User(email="bench-student@example.com", password_hash="x", display_name="Sid", role=Role.student)
        session.add_all([tutor, student])
        await session.flush()
        profile = TutorProfile(
            user_id=tutor.id, slug="bea-bench", status=ProfileStatus.approved, onboarding_step=6, draft=doc, live=doc
        )
        session.add(profile)
        session.add(
            Availability(
                tutor_id=tutor.id,
                zone=TUTOR_ZONE,
                weekly={str(d): WINDOWS for d in range(7)},
                buffer_before=10,
                buffer_after=10,
                notice_minutes=12 * 60,
                horizon_days=60,
                max_per_day=8,
            )
        )
        for i, day in enumerate(rng.sample(days, 20)):
            if i < 10:
                windows, replace = [], True
            elif i < 15:
                windows, replace = [["07:00", "08:30"]], False
            else:
                windows, replace = [["10:00", "14:00"], ["16:00", "19:00"]], True
            session.add(AvailabilityOverride(tutor_id=tutor.id, on_date=day, windows=windows, replace=replace))
        for day, hour in rng.sample([(d, h) for d in days for h in BOOKING_HOURS], 300):
            start = datetime(day.year, day.month, day.day, hour, tzinfo=berlin).astimezone(UTC)
            end = start + timedelta(minutes=30)
            session.add(
                Booking(
                    tutor_id=tutor.id,
                    student_id=student.id,
                    starts_at=start,
                    ends_at=end,
                    blocked_from=start - timedelta(minutes=10),
                    blocked_until=end + timedelta(minutes=10),
                    status=BookingStatus.confirmed,
                    price_amount=5000,
                    currency="EUR",
                )
            )
        calendar = ExternalCalendar(tutor_id=tutor.id, url="https://calendar.example.com/bench.ics")
        session.add(calendar)
        await session.flush()
        for _ in range(100):
            start = now + timedelta(minutes=rng.randrange(0, 56 * 24 * 60, 15))
            length = timedelta(minutes=rng.choice([30, 45, 60, 90, 120]))
            session.add(
                ExternalBusy(calendar_id=calendar.id, tutor_id=tutor.id, starts_at=start, ends_at=start + length)
            )
        return profile.id, profile.slug


async def measure(
    client, path: str, params: dict[str, str], requests: int, warmup: int
) -> tuple[list[float], list[float], int]:
    """Wall time and CPU time (this process, every thread) per request, sorted; the slot count."""
    response = None
    for _ in range(warmup):
        response = await client.get(path, params=params)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    wall, cpu = [], []
    for _ in range(requests):
        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
        response = await client.get(path, params=params)
        wall.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.process_time_ns() - c0) / 1e6)
        assert response.status_code == 200, (path, response.status_code)
    wall.sort()
    cpu.sort()
    slots = len(response.json()["slots"]) if response is not None and path.startswith("/api/") else -1
    return wall, cpu, slots


async def run(args: argparse.Namespace) -> int:
    import httpx
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from marketplace.app import create_app
    from marketplace.migrations import upgrade_head_sync
    from marketplace.settings import get_settings

    url = get_settings().database_url
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()
    await asyncio.to_thread(upgrade_head_sync, url)
    profile_id, slug = await build_tutor(args.seed)

    api = f"/api/v1/tutors/{profile_id}/slots"
    viewer_today = datetime.now(UTC).astimezone(ZoneInfo(VIEWER_ZONE)).date()
    scenarios = [
        ("week", api, {"tz": VIEWER_ZONE, "duration": "60"}),
        (
            "8 weeks",
            api,
            {
                "tz": VIEWER_ZONE,
                "duration": "60",
                "from": viewer_today.isoformat(),
                "to": (viewer_today + timedelta(days=55)).isoformat(),
            },
        ),
        ("profile page", f"/tutors/{slug}", {"tz": VIEWER_ZONE}),
    ]
    results = []
    transport = httpx.ASGITransport(app=create_app())  # on this event loop: no thread hops
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
        for name, path, params in scenarios:
            statements: list[str] = []

            def record(conn, cursor, statement, parameters, context, executemany, _s=statements):
                _s.append(statement)

            event.listen(Engine, "before_cursor_execute", record)
            try:
                await client.get(path, params=params)
            finally:
                event.remove(Engine, "before_cursor_execute", record)
            wall, cpu, slots = await measure(client, path, params, args.requests, args.warmup)
            results.append((name, wall, cpu, slots, len(statements)))
    from marketplace.db import dispose_engines

    await dispose_engines()

    print(f"command: {args.command}")
    database = url.split(":", 1)[0]
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}; database: {database}")
    print(
        "tutor: Europe/Berlin, 3 windows/day, 20 overrides, 300 bookings, 100 busy events over 8 weeks; "
        f"buffers 10/10 min, notice 12 h, horizon 60 days, max 8/day; viewer {VIEWER_ZONE}; "
        f"{args.requests} requests per row after {args.warmup} warm-up, one at a time, in-process ASGI"
    )
    header = ("request", "slots", "SQL", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms", "CPU p50", "CPU p95")
    print(f"{header[0]:<14} {header[1]:>6} {header[2]:>4} " + " ".join(f"{h:>8}" for h in header[3:]))
    verdict_ok = True
    for name, wall, cpu, slots, sql in results:
        p95 = percentile(wall, 95)
        if name != "profile page":
            verdict_ok = verdict_ok and p95 <= TARGET_P95_MS
        print(
            f"{name:<14} {slots if slots >= 0 else '-':>6} {sql:>4} {percentile(wall, 50):8.2f} {p95:8.2f} "
            f"{percentile(wall, 99):8.2f} {statistics.fmean(wall):8.2f} {wall[-1]:8.2f} "
            f"{percentile(cpu, 50):8.2f} {percentile(cpu, 95):8.2f}"
        )
    print("(wall: time per request; CPU: this process's CPU time per request, all threads, which other")
    print(" load on the machine does not inflate; SQL: statements one request runs)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at the end (high load inflates wall times)")
    print(f"target: slots p95 <= {TARGET_P95_MS:g} ms -> {'OK' if verdict_ok else 'ABOVE TARGET'}")
    return 0 if verdict_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="measured requests per scenario (default 500)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests first (default 50)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the calendar (default 7)")
    parser.add_argument("--database-url", default="", help="database (default: SQLite in a temporary directory)")
    args = parser.parse_args()
    args.command = f"{os.path.relpath(sys.executable)} {' '.join(sys.argv)}"
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-slots-") as tmp:
        os.environ["VAR_DIR"] = tmp
        os.environ["DATABASE_URL"] = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        os.environ["MODE"] = "test"
        os.environ["MIGRATE_ON_START"] = "false"
        os.environ["SECRET_KEY"] = "bench-secret-key-for-local-measurements-only-0123456789"
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        import logging

        logging.getLogger("httpx").setLevel(logging.WARNING)
        os.environ.pop("REDIS_URL", None)
        os.environ["BROKER_URL"] = "stub://"
        return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
