"""Booking benchmark: throughput of non-colliding bookings and latency of the 50-way collision,
on PostgreSQL and SQLite side by side.

Run with ``.venv/bin/python bench/bookings.py`` (options: ``--help``). For each database the
script runs a child process that migrates a fresh schema, creates tutors with an all-day calendar
and signed-in students, starts the real server (``marketplace run``: one uvicorn worker on
127.0.0.1) and measures over HTTP (session, CSRF, the slot check in the write transaction, the
insert and the redirect all included):

1. **HTTP throughput**: ``POST /book/{slug}`` holds on distinct slots, ``--concurrency`` clients at
   once: bookings/s and per-request p50/p95.
2. **Service throughput**: ``booking_hold`` in its own write transaction per booking, the same
   concurrency, in the benchmark process (no HTTP): bookings/s and p50/p95.
3. **Collision**: ``--rounds`` times, 50 students POST the same slot at the same moment; exactly one
   must get the hold (303) and 49 a 409. Reported: per-request latency p50/p95 over all attempts
   and the time until the whole round was decided (p50/p95 of the rounds).

PostgreSQL: ``--pg-url`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/cadenza_bench_bookings``)
names a database that the script RESETS (drops and recreates its ``public`` schema); it is created
when missing. SQLite runs in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"
CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/cadenza_bench_bookings"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


# ---- child: one database ------------------------------------------------------------------------


async def _prepare_db(url: str) -> None:
    if url.startswith("postgresql"):
        import asyncpg

        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        base, _, name = dsn.rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()


async def _setup(tutors: int, students: int):
    from marketplace.accounts.models import Role, User
    from marketplace.accounts.services import password_hash
    from marketplace.db import transaction, utcnow
    from marketplace.tutors.models import ProfileStatus, TutorProfile
    from payouts.models import PayoutAccount
    from scheduling.models import Availability

    digest = password_hash(PASSWORD)
    tutor_rows, student_rows = [], []
    async with transaction() as session:
        for n in range(tutors):
            t = User(
                email=f"tutor{n}@bench.test",
                password_hash=digest,
                display_name=f"Tutor {n}",
                role=Role.tutor,
                timezone="UTC",
                locale="en",
                email_verified_at=utcnow(),
            )
            session.add(t)
            await session.flush()
            live = {
                "display_name": f"Tutor {n}",
                "currency": "EUR",
                "durations": [{"minutes": 60, "price": 4500}],
                "trial": None,
            }
            session.add(
                TutorProfile(
                    user_id=t.id,
                    slug=f"bench-tutor-{n}",
                    status=ProfileStatus.approved,
                    draft=live,
                    live=live,
                    onboarding_step=6,
                )
            )
            session.add(
                Availability(
                    tutor_id=t.id,
                    zone="UTC",
                    weekly={str(d): [["00:00", "24:00"]] for d in range(7)},
                    notice_minutes=0,
                    horizon_days=90,
                )
            )
            session.add(  # without enabled payouts a tutor takes no bookings
                PayoutAccount(
                    tutor_id=t.id,
                    provider="offline",
                    account_id=f"acct_test_bench_{t.id.hex}",
                    charges_enabled=True,
                    payouts_enabled=True,
                    details_submitted=True,
                    requirements_due=[],
                )
            )
            tutor_rows.append(t)
        for n in range(students):
            s = User(
                email=f"student{n}@bench.test",
                password_hash=digest,
                display_name=f"Student {n}",
                role=Role.student,
                timezone="UTC",
                locale="en",
                email_verified_at=utcnow(),
            )
            session.add(s)
            student_rows.append(s)
    return tutor_rows, student_rows


async def _clients(base_url: str, count: int):
    import httpx

    async def one(n: int):
        c = httpx.AsyncClient(base_url=base_url, timeout=120)
        page = await c.get("/login")
        token = CSRF_RE.search(page.text).group(1)
        r = await c.post("/login", data={"_csrf_token": token, "email": f"student{n}@bench.test", "password": PASSWORD})
        assert r.status_code in (200, 303), r.status_code
        page = await c.get("/lessons")
        return c, CSRF_RE.search(page.text).group(1)

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def _slot_iter(days_from: int, count: int):
    from datetime import UTC, datetime, timedelta

    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=days_from)
    return [base + timedelta(hours=h) for h in range(count)]


async def _child(args) -> dict:
    from marketplace.db import transaction
    from marketplace.migrations import upgrade_head_sync
    from scheduling.bookings import booking_hold

    url = os.environ["DATABASE_URL"]
    await _prepare_db(url)
    await asyncio.to_thread(upgrade_head_sync, url)
    conc = args.concurrency
    tutors, students = await _setup(tutors=3, students=max(50, conc))
    result: dict = {"database": "PostgreSQL" if url.startswith("postgresql") else "SQLite"}

    from tests.e2e.server import start_server

    server = start_server(dict(os.environ), Path(os.environ["VAR_DIR"]) / "server.log")
    try:
        clients = await _clients(server.url, max(50, conc))

        # 1. HTTP throughput: distinct slots of tutor 0, `conc` clients at once.
        slots = _slot_iter(1, args.bookings)
        queue: asyncio.Queue = asyncio.Queue()
        for s in slots:
            queue.put_nowait(s)
        lat: list[float] = []
        bad: list[int] = []

        async def http_worker(c, token):
            while not queue.empty():
                start = queue.get_nowait()
                iso = start.strftime("%Y-%m-%dT%H:%M:%SZ")
                t0 = time.perf_counter()
                r = await c.post(
                    "/book/bench-tutor-0",
                    data={"_csrf_token": token, "start": iso, "duration": "60"},
                    follow_redirects=False,
                )
                lat.append(time.perf_counter() - t0)
                if r.status_code != 303:
                    bad.append(r.status_code)

        t0 = time.perf_counter()
        await asyncio.gather(*(http_worker(c, tok) for c, tok in clients[:conc]))
        wall = time.perf_counter() - t0
        result["http"] = {
            "bookings": len(slots),
            "per_s": len(slots) / wall,
            "p50_ms": pct(lat, 50) * 1000,
            "p95_ms": pct(lat, 95) * 1000,
            "failed": len(bad),
        }

        # 2. Service throughput: tutor 1, each booking its own write transaction.
        slots = _slot_iter(1, args.bookings)
        queue = asyncio.Queue()
        for s in slots:
            queue.put_nowait(s)
        lat = []
        errors: list[str] = []

        async def svc_worker(student):
            while not queue.empty():
                start = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    async with transaction(write=True) as session:
                        await booking_hold(
                            session, student=student, tutor_user_id=tutors[1].id, starts_at=start, duration=60
                        )
                except Exception as exc:  # reported, never hidden
                    errors.append(type(exc).__name__)
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(svc_worker(s) for s in students[:conc]))
        wall = time.perf_counter() - t0
        result["service"] = {
            "bookings": len(slots),
            "per_s": len(slots) / wall,
            "p50_ms": pct(lat, 50) * 1000,
            "p95_ms": pct(lat, 95) * 1000,
            "failed": len(errors),
        }

        # 3. Collision: 50 clients race for one slot of tutor 2, `rounds` times.
        race_lat: list[float] = []
        round_wall: list[float] = []
        outcomes_ok = 0
        five_xx = 0
        for start in _slot_iter(2, args.rounds):
            iso = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            gate = asyncio.Event()

            async def attempt(c, token, iso=iso, gate=gate):
                await gate.wait()
                t0 = time.perf_counter()
                r = await c.post(
                    "/book/bench-tutor-2",
                    data={"_csrf_token": token, "start": iso, "duration": "60"},
                    follow_redirects=False,
                )
                race_lat.append(time.perf_counter() - t0)
                return r.status_code

            tasks = [asyncio.create_task(attempt(c, tok)) for c, tok in clients[:50]]
            await asyncio.sleep(0)
            t0 = time.perf_counter()
            gate.set()
            codes = await asyncio.gather(*tasks)
            round_wall.append(time.perf_counter() - t0)
            five_xx += sum(1 for c in codes if c >= 500)
            if codes.count(303) == 1 and codes.count(409) == 49:
                outcomes_ok += 1
        result["collision"] = {
            "rounds": args.rounds,
            "rounds_exactly_one_winner": outcomes_ok,
            "five_xx": five_xx,
            "p50_ms": pct(race_lat, 50) * 1000,
            "p95_ms": pct(race_lat, 95) * 1000,
            "round_p50_ms": pct(round_wall, 50) * 1000,
            "round_p95_ms": pct(round_wall, 95) * 1000,
        }
        for c, _tok in clients:
            await c.aclose()
    finally:
        server.stop()
    from marketplace.db import dispose_engines

    await dispose_engines()
    return result


# ---- parent: run the children and print ---------------------------------------------------------


def run_child(url: str, args, var_dir: str) -> dict | None:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MODE": "test",
        "VAR_DIR": var_dir,
        "SECRET_KEY": "bench-secret-key-for-local-measurements-only-0123456789",
        "MIGRATE_ON_START": "false",
        "LOG_LEVEL": "ERROR",
        "BROKER_URL": "stub://",
        "REDIS_URL": "",
        "BASE_URL": "http://testserver.local",
    }
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--bookings",
        str(args.bookings),
        "--concurrency",
        str(args.concurrency),
        "--rounds",
        str(args.rounds),
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT ") :])
    print(f"--- {url.split('://')[0]} failed (exit {proc.returncode}) ---\n{proc.stderr[-3000:]}", file=sys.stderr)
    return None


def print_table(results: list[dict]) -> None:
    names = [r["database"] for r in results]
    rows = [
        ("HTTP holds/s (distinct slots)", lambda r: f"{r['http']['per_s']:.0f}"),
        ("  per request p50 / p95 ms", lambda r: f"{r['http']['p50_ms']:.1f} / {r['http']['p95_ms']:.1f}"),
        ("  failed", lambda r: str(r["http"]["failed"])),
        ("service holds/s (distinct slots)", lambda r: f"{r['service']['per_s']:.0f}"),
        ("  per hold p50 / p95 ms", lambda r: f"{r['service']['p50_ms']:.1f} / {r['service']['p95_ms']:.1f}"),
        ("  failed", lambda r: str(r["service"]["failed"])),
        (
            "50-way collision: rounds with 1 winner",
            lambda r: f"{r['collision']['rounds_exactly_one_winner']}/{r['collision']['rounds']}",
        ),
        ("  5xx answers", lambda r: str(r["collision"]["five_xx"])),
        ("  per request p50 / p95 ms", lambda r: f"{r['collision']['p50_ms']:.1f} / {r['collision']['p95_ms']:.1f}"),
        (
            "  round decided p50 / p95 ms",
            lambda r: f"{r['collision']['round_p50_ms']:.1f} / {r['collision']['round_p95_ms']:.1f}",
        ),
    ]
    width = max(len(label) for label, _ in rows) + 2
    print("".ljust(width) + "".join(n.rjust(18) for n in names))
    for label, fn in rows:
        print(label.ljust(width) + "".join(fn(r).rjust(18) for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG), help="PostgreSQL (reset!)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--bookings", type=int, default=300, help="non-colliding bookings per throughput run")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients in the throughput runs")
    parser.add_argument("--rounds", type=int, default=10, help="50-way collision rounds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print("BENCH_RESULT " + json.dumps(asyncio.run(_child(args))))
        return
    print(
        f"bookings benchmark: {args.bookings} distinct-slot holds at concurrency {args.concurrency}, "
        f"{args.rounds} rounds of a 50-way collision; one uvicorn worker on 127.0.0.1, {os.cpu_count()} CPUs"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-bookings-") as tmp:
        if not args.no_pg:
            r = run_child(args.pg_url, args, tmp)
            if r:
                results.append(r)
        r = run_child(f"sqlite+aiosqlite:///{tmp}/bench.db", args, tmp)
        if r:
            results.append(r)
    if results:
        print_table(results)
    if len(results) < (1 if args.no_pg else 2):
        sys.exit(1)


if __name__ == "__main__":
    main()
