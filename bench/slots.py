"""Slot engine benchmark: time per ``compute_slots`` call on a busy tutor's calendar.

Run with ``.venv/bin/python bench/slots.py`` (options: ``--calls``, ``--seed``). Pure CPU, no I/O.

Scenario (fixed seed): a Europe/Berlin tutor with 3 windows every day (09:00-12:00, 13:00-17:00,
18:00-21:00), 20 date overrides (days off, extra hours, replaced hours), 300 existing bookings,
100 external busy events, 60-minute lessons on a 30-minute step, 10-minute buffers, 12 hours'
notice, at most 8 lessons a day, viewed from America/New_York for 8 weeks (56 viewer dates,
spanning both the US and the EU switch to summer time). The figures are the median and p95 wall
time per call over ``--calls`` calls, after a warm-up; then the same with the engine's per-zone
cache of offset changes emptied before every call ("cold", what a first query pays).

Target: median <= 2 ms per call.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduling import slots as slots_module
from scheduling.slots import (
    Interval,
    Override,
    SlotQuery,
    WeeklyRules,
    compute_slots,
    parse_windows,
)

TARGET_MS = 2.0
TUTOR_ZONE = "Europe/Berlin"
VIEWER_ZONE = "America/New_York"
WINDOWS = "09:00-12:00, 13:00-17:00, 18:00-21:00"


def build_query(seed: int) -> SlotQuery:
    rng = random.Random(seed)
    berlin = ZoneInfo(TUTOR_ZONE)
    now = datetime(2026, 2, 23, 7, 13, tzinfo=UTC)
    first = date(2026, 2, 23)
    days = [first + timedelta(days=i) for i in range(56)]
    rules = WeeklyRules(TUTOR_ZONE, {d: parse_windows(WINDOWS) for d in range(7)})

    override_days = rng.sample(days, 20)
    overrides = []
    for i, day in enumerate(override_days):
        if i < 10:
            overrides.append(Override(day))  # day off
        elif i < 15:
            overrides.append(Override(day, parse_windows("07:00-08:30"), replace=False))  # extra hours
        else:
            overrides.append(Override(day, parse_windows("10:00-14:00, 16:00-19:00")))  # replaced

    # 300 bookings on free hour slots inside the weekly windows (tutor wall time, real instants).
    hours = [h for h in range(9, 21) if h not in (12, 17)]
    candidates = [(day, h) for day in days for h in hours]
    bookings = []
    for day, h in rng.sample(candidates, 300):
        start = datetime(day.year, day.month, day.day, h, tzinfo=berlin).astimezone(UTC)
        bookings.append(Interval(start, start + timedelta(hours=1)))

    busy = []
    for _ in range(100):
        start = now + timedelta(minutes=rng.randrange(0, 56 * 24 * 60, 15))
        busy.append(Interval(start, start + timedelta(minutes=rng.choice([30, 45, 60, 90, 120]))))

    return SlotQuery(
        rules=rules,
        duration=60,
        step=30,
        now=now,
        viewer_zone=VIEWER_ZONE,
        date_from=first,
        date_to=first + timedelta(days=55),
        overrides=tuple(overrides),
        bookings=tuple(sorted(bookings, key=lambda b: b.start)),
        busy=tuple(busy),
        buffer_before=10,
        buffer_after=10,
        notice=12 * 60,
        horizon_days=60,
        max_per_day=8,
    )


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, round(p / 100 * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls (default 2000)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls first (default 100)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the calendar (default 7)")
    args = parser.parse_args()

    query = build_query(args.seed)
    slots = compute_slots(query)
    for _ in range(args.warmup):
        compute_slots(query)
    times_ms = []
    for _ in range(args.calls):
        t0 = time.perf_counter_ns()
        compute_slots(query)
        times_ms.append((time.perf_counter_ns() - t0) / 1e6)
    times_ms.sort()
    median = statistics.median(times_ms)
    p95 = percentile(times_ms, 95)

    # Cold: the per-zone cache of UTC offset changes emptied before every call (what the first
    # query for a zone and period pays; later queries for the same zones reuse the cache).
    cold_ms = []
    for _ in range(max(1, args.calls // 4)):
        slots_module._block_changes.cache_clear()
        t0 = time.perf_counter_ns()
        compute_slots(query)
        cold_ms.append((time.perf_counter_ns() - t0) / 1e6)
    cold_ms.sort()

    print(f"command: {os.path.relpath(sys.executable)} {' '.join(sys.argv)}")
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    print(
        f"input: 56 days x 3 windows/day, {len(query.overrides)} overrides, {len(query.bookings)} bookings, "
        f"{len(query.busy)} busy events; duration {query.duration} min, step {query.step} min, "
        f"buffers {query.buffer_before}/{query.buffer_after} min, notice {query.notice} min, "
        f"max {query.max_per_day}/day; tutor {TUTOR_ZONE}, viewer {VIEWER_ZONE}"
    )
    print(f"output: {len(slots)} slots")
    print(f"calls: {args.calls} (after {args.warmup} warm-up)")
    print(f"median: {median:.3f} ms/call   p95: {p95:.3f} ms/call   min: {times_ms[0]:.3f}   max: {times_ms[-1]:.3f}")
    print(
        f"cold (zone offset cache cleared before each of {len(cold_ms)} calls): "
        f"median {statistics.median(cold_ms):.3f} ms/call   p95 {percentile(cold_ms, 95):.3f} ms/call"
    )
    verdict = "OK" if median <= TARGET_MS else "ABOVE TARGET"
    print(f"target: median <= {TARGET_MS} ms -> {verdict}")
    return 0 if median <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
