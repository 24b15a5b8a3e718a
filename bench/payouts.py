"""Payments benchmark: the Stripe webhook endpoints under 50 concurrent deliveries over real HTTP,
and the ledger's balance check and reconciliation aggregates over 100,000 transactions.

    .venv/bin/python bench/payouts.py                       # SQLite in a temporary directory
    .venv/bin/python bench/payouts.py --pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/h6_bench \
        --redis-url redis://127.0.0.1:6379/6               # SQLite and PostgreSQL side by side

The PostgreSQL database named by ``--pg-url`` is RESET, and so is the Redis db of ``--redis-url``.
Each database runs in its own child process of this script, in a fresh schema and a temporary
VAR_DIR.

Webhooks: the server runs as a production deployment on this machine would run it:
``marketplace run --workers 2`` (uvicorn), jobs on the Redis broker (``BROKER_URL``) with
``marketplace worker`` beside the web processes (``--redis-url ''`` keeps jobs in-process). MODE
stays ``development`` only because production mode demands HTTPS-only cookies. Signed events (real
HMAC-SHA256 signatures, checked on the raw body) go to ``/webhooks/stripe``
(``checkout.session.expired``) and, one in four, to ``/webhooks/stripe-connect`` (``payout.paid`` of
a connected account); each is verified, stored once by id and processed by a job.

1. Sustained: ``--concurrency`` (50) keep-alive connections, each sending its next delivery as soon
   as the previous one is answered, ``--deliveries`` in total (a saturation test: latency =
   concurrency / throughput).
2. Bursts: ``--burst-count`` deliveries in bursts of ``--concurrency`` arriving at once,
   ``--burst-pause`` apart.

p50/p95/p99 and the status counts of each (target: p95 under 100 ms), the web processes' CPU time
per delivery (from /proc: a figure that hardly depends on the machine's other load), and how long
after the last answer the jobs had processed every stored event. The load generator (raw-socket HTTP/1.1,
``bench/lessons.py``) runs on the same cores as the server: the latencies include that competition.

Ledger (in-process, after the server stopped): ``--transactions`` balanced transactions (payment,
refund, transfer, reversal; 2-3 entries each) are bulk-inserted, then timed: the balance check
(every transaction balanced, books zero per currency), the per-booking aggregation that
reconciliation compares with the provider, and the admin finance summary.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

SECRET = "whsec_bench_secret"
CONNECT_SECRET = "whsec_bench_connect"


def _sign(body: bytes, secret: str = SECRET) -> str:
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def webhook_requests(port: int, count: int) -> list[bytes]:
    """Signed deliveries: three in four to the platform endpoint, one in four to Connect's."""
    from bench.lessons import post

    now = int(time.time())
    out = []
    for i in range(count):
        if i % 4 == 3:
            event = {
                "id": f"evt_{uuid.uuid4().hex[:24]}",
                "object": "event",
                "type": "payout.paid",
                "account": "acct_bench",
                "created": now,
                "data": {"object": {"id": f"po_{uuid.uuid4().hex[:16]}", "object": "payout", "amount": 1000}},
            }
            path, secret = "/webhooks/stripe-connect", CONNECT_SECRET
        else:
            event = {
                "id": f"evt_{uuid.uuid4().hex[:24]}",
                "object": "event",
                "type": "checkout.session.expired",
                "created": now,
                "data": {"object": {"id": f"cs_test_{uuid.uuid4().hex[:16]}", "object": "checkout.session"}},
            }
            path, secret = "/webhooks/stripe", SECRET
        body = json.dumps(event).encode()
        headers = {"Stripe-Signature": _sign(body, secret), "Content-Type": "application/json"}
        out.append(post(port, path, body, headers))
    return out


async def pending_events() -> int:
    from sqlalchemy import func, select

    from marketplace.db import session_factory
    from payouts.models import WebhookEvent

    async with session_factory()() as session:
        return (await session.execute(select(func.count()).where(WebhookEvent.status == "pending"))).scalar_one()


async def wait_processed(seconds: float) -> int:
    """Poll until no stored event is pending (or ``seconds`` passed): the number still pending."""
    deadline = time.perf_counter() + seconds
    pending = await pending_events()
    while pending and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
        pending = await pending_events()
    return pending


async def bench_webhooks(args: argparse.Namespace) -> dict:
    from bench.lessons import bursts, exchange, free_port, loadavg, server_cpu_seconds, start_processes
    from marketplace.db import dispose_engines

    port = free_port()
    env = {**os.environ, "BASE_URL": f"http://{HOST}:{port}", "MIGRATE_ON_START": "false"}
    procs: list[subprocess.Popen] = []
    try:
        await asyncio.to_thread(start_processes, args, env, Path(os.environ["VAR_DIR"]), port, procs)
        warm = webhook_requests(port, 200)
        _lat, statuses, _wall = await exchange(port, warm, args.concurrency)
        assert statuses == {200: len(warm)}, statuses
        await wait_processed(60)  # the warm-up's jobs finish before the measurement
        load_before = loadavg()
        hooks = webhook_requests(port, args.deliveries)
        cpu_before = server_cpu_seconds(procs)
        latencies, statuses, wall = await exchange(port, hooks, args.concurrency)
        t_answered = time.perf_counter()
        cpu_sustained = server_cpu_seconds(procs) - cpu_before
        pending = await wait_processed(300)
        processed_after = time.perf_counter() - t_answered
        burst_hooks = webhook_requests(port, args.burst_count)
        cpu_before = server_cpu_seconds(procs)
        burst_latencies, burst_statuses = await bursts(port, burst_hooks, args.concurrency, args.burst_pause)
        cpu_bursts = server_cpu_seconds(procs) - cpu_before
        pending += await wait_processed(300)
        result = {
            "webhook_p50": _pct(latencies, 50),
            "webhook_p95": _pct(latencies, 95),
            "webhook_p99": _pct(latencies, 99),
            "webhook_rate": len(latencies) / wall,
            "statuses": {str(k): v for k, v in statuses.items()},
            "burst_p50": _pct(burst_latencies, 50),
            "burst_p95": _pct(burst_latencies, 95),
            "burst_p99": _pct(burst_latencies, 99),
            "burst_statuses": {str(k): v for k, v in burst_statuses.items()},
            "processed_after": processed_after,
            "pending": pending,
            "load": load_before,
            "cpu_per_webhook_us": cpu_sustained / len(hooks) * 1e6,
            "cpu_per_burst_webhook_us": cpu_bursts / len(burst_hooks) * 1e6,
        }
        print(
            f"  webhooks, {args.deliveries} deliveries, {args.concurrency} concurrent (sustained): "
            f"p50 {result['webhook_p50']:.1f} ms, p95 {result['webhook_p95']:.1f} ms, "
            f"p99 {result['webhook_p99']:.1f} ms, {result['webhook_rate']:.0f}/s, statuses {statuses}; "
            f"all processed by the jobs {processed_after:.2f} s after the last answer; "
            f"web server CPU {result['cpu_per_webhook_us']:.0f} us per delivery; "
            f"load average before {load_before}",
            flush=True,
        )
        print(
            f"  webhooks, bursts of {args.concurrency} deliveries at once, {args.burst_pause * 1000:.0f} ms apart, "
            f"{args.burst_count} in total: p50 {result['burst_p50']:.1f} ms, p95 {result['burst_p95']:.1f} ms, "
            f"p99 {result['burst_p99']:.1f} ms, statuses {burst_statuses}; pending after {pending}",
            flush=True,
        )
        return result
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await dispose_engines()


async def bench_ledger(transactions: int) -> dict[str, float]:
    from sqlalchemy import insert

    from marketplace.db import dispose_engines, session_factory, transaction, utcnow
    from payouts import ledger, reports
    from payouts.models import LedgerEntry, LedgerTransaction
    from payouts.reconcile import _ledger_by_booking, ledger_check

    rng = random.Random(7)
    tutors = [uuid.uuid4() for _ in range(500)]
    txn_rows: list[dict] = []
    entry_rows: list[dict] = []
    now = utcnow()
    made = 0
    while made < transactions:
        booking = uuid.uuid4()
        tutor = rng.choice(tutors)
        currency = rng.choice(("EUR", "EUR", "EUR", "USD", "GBP"))
        amount = rng.randrange(1500, 12000)
        fee = ledger.platform_fee(amount, 15)
        built = [
            ledger.payment_txn(key=f"payment:{booking}", tutor_id=tutor, amount=amount, fee=fee, currency=currency)
        ]
        refunded = rng.choice((0, 0, 0, amount // 2))
        if refunded:
            tutor_part = ledger.tutor_share_of_refund(paid=amount, fee=fee, refunded_total=refunded)
            built.append(
                ledger.refund_txn(
                    key=f"refund:{booking}:{refunded}",
                    tutor_id=tutor,
                    tutor_part=tutor_part,
                    platform_part=refunded - tutor_part,
                    currency=currency,
                )
            )
        owed = amount - fee - ledger.tutor_share_of_refund(paid=amount, fee=fee, refunded_total=refunded)
        built.append(ledger.transfer_txn(key=f"transfer:{booking}", tutor_id=tutor, amount=owed, currency=currency))
        if rng.random() < 0.05:
            built.append(
                ledger.transfer_reversal_txn(
                    key=f"reversal:{booking}", tutor_id=tutor, amount=owed // 3, currency=currency
                )
            )
        for txn in built[: transactions - made]:
            tid = uuid.uuid4()
            occurred = now.replace(day=1, hour=12) if rng.random() < 0.5 else now
            txn_rows.append(
                {
                    "id": tid,
                    "key": txn.key,
                    "kind": txn.kind,
                    "booking_id": booking,
                    "tutor_id": tutor,
                    "occurred_at": occurred,
                }
            )
            entry_rows.extend(
                {"transaction_id": tid, "account": p.account, "currency": p.currency, "amount": p.amount}
                for p in txn.postings
            )
            made += 1
    load_started = time.perf_counter()
    for i in range(0, len(txn_rows), 5000):
        async with transaction() as session:
            await session.execute(insert(LedgerTransaction), txn_rows[i : i + 5000])
    for i in range(0, len(entry_rows), 10000):
        async with transaction() as session:
            await session.execute(insert(LedgerEntry), entry_rows[i : i + 10000])
    load = time.perf_counter() - load_started

    results: dict[str, float] = {"transactions": len(txn_rows), "entries": len(entry_rows), "load_s": load}
    async with session_factory()() as session:
        t0 = time.perf_counter()
        diffs, count, totals = await ledger_check(session)
        results["balance_check_s"] = time.perf_counter() - t0
        assert not diffs and count == len(txn_rows) and all(v == 0 for v in totals.values()), (diffs, totals)
        t0 = time.perf_counter()
        books = await _ledger_by_booking(session)
        results["reconcile_aggregate_s"] = time.perf_counter() - t0
        results["bookings"] = len(books)
        t0 = time.perf_counter()
        await reports.finance_summary(session)
        results["finance_summary_s"] = time.perf_counter() - t0
    results["balance_plus_reconcile_s"] = results["balance_check_s"] + results["reconcile_aggregate_s"]
    await dispose_engines()
    return results


async def reset(url: str, redis_url: str) -> None:
    """A fresh schema (PostgreSQL: the public schema is dropped) and an empty Redis db."""
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        await conn.close()
    if redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(redis_url)
        await redis.flushdb()
        await redis.aclose()


def single(args: argparse.Namespace) -> int:
    var_dir = tempfile.mkdtemp(prefix="cadenza-bench-payouts-")
    url = args.single if args.single != "sqlite" else f"sqlite+aiosqlite:///{var_dir}/bench.db"
    os.environ.update(
        MODE="development",
        VAR_DIR=var_dir,
        SECRET_KEY="bench-secret-key-that-is-long-enough-0123456789-abcdef",
        LOG_LEVEL="WARNING",
        STRIPE_SECRET_KEY="sk_test_bench",
        STRIPE_PUBLISHABLE_KEY="pk_test_bench",
        STRIPE_WEBHOOK_SECRET=SECRET,
        STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_SECRET,
        DATABASE_URL=url,
    )
    if args.redis_url:
        os.environ.update(REDIS_URL=args.redis_url, BROKER_URL=args.redis_url)
    else:
        os.environ.pop("REDIS_URL", None)
        os.environ["BROKER_URL"] = "stub://"
    try:
        from marketplace.migrations import upgrade_head_sync

        asyncio.run(reset(url, args.redis_url))
        upgrade_head_sync(url)
        result = asyncio.run(bench_webhooks(args)) if args.deliveries else {}
        led = asyncio.run(bench_ledger(args.transactions)) if args.transactions else {}
        if led:
            print(
                f"  ledger: {led['transactions']} transactions, {led['entries']} entries, {led['bookings']} bookings "
                f"(loaded in {led['load_s']:.1f} s); balance check {led['balance_check_s']:.2f} s, "
                f"reconcile aggregate {led['reconcile_aggregate_s']:.2f} s, together "
                f"{led['balance_plus_reconcile_s']:.2f} s; finance summary {led['finance_summary_s']:.2f} s",
                flush=True,
            )
        result.update({f"ledger_{k}": v for k, v in led.items()})
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    finally:
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)


def main() -> int:
    from bench.lessons import loadavg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default="", help="also PostgreSQL at this URL (the database is RESET)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/4",
        help="the job broker (this Redis db is FLUSHED); '' for in-process jobs",
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--job-threads", type=int, default=2, help="threads of the Dramatiq worker process")
    parser.add_argument("--deliveries", type=int, default=2000, help="sustained deliveries (0: no webhooks)")
    parser.add_argument("--concurrency", type=int, default=50, help="connections; also the burst size")
    parser.add_argument("--burst-count", type=int, default=1000, help="deliveries sent in bursts")
    parser.add_argument("--burst-pause", type=float, default=0.1, help="seconds between bursts")
    parser.add_argument("--transactions", type=int, default=100_000, help="ledger transactions (0: no ledger)")
    parser.add_argument("--single", default="", help=argparse.SUPPRESS)  # one database, in a child
    args = parser.parse_args()
    if args.single:
        return single(args)
    databases = [("SQLite", "sqlite")]
    if args.pg_url:
        databases.append(("PostgreSQL", args.pg_url))
    setup = f"{args.workers} uvicorn workers, " + (
        f"Redis broker ({args.redis_url}) with 1 worker process x {args.job_threads} threads"
        if args.redis_url
        else "in-process jobs"
    )
    print(f"{setup}; {os.cpu_count()} CPUs; load average {loadavg()}", flush=True)
    results = {}
    for label, url in databases:
        print(f"{label}:", flush=True)
        command = [sys.executable, __file__, "--single", url, "--redis-url", args.redis_url]
        command += ["--workers", str(args.workers), "--job-threads", str(args.job_threads)]
        command += ["--deliveries", str(args.deliveries), "--concurrency", str(args.concurrency)]
        command += ["--burst-count", str(args.burst_count), "--burst-pause", str(args.burst_pause)]
        command += ["--transactions", str(args.transactions)]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                results[label] = json.loads(line[len("RESULT ") :])
            else:
                print(line, flush=True)
        if proc.returncode:
            print(proc.stderr[-4000:], file=sys.stderr)
            return proc.returncode
    labels = list(results)
    rows = []
    if args.deliveries:
        rows += [
            ("webhook sustained p50/p95", lambda r: f"{r['webhook_p50']:.1f} / {r['webhook_p95']:.1f}"),
            ("webhook sustained p99 (ms)", lambda r: f"{r['webhook_p99']:.1f}"),
            ("webhook sustained per s", lambda r: f"{r['webhook_rate']:.0f}"),
            ("webhook bursts p50/p95", lambda r: f"{r['burst_p50']:.1f} / {r['burst_p95']:.1f}"),
            ("webhook bursts p99 (ms)", lambda r: f"{r['burst_p99']:.1f}"),
            (
                "server CPU/delivery (us)",
                lambda r: f"{r['cpu_per_webhook_us']:.0f} / {r['cpu_per_burst_webhook_us']:.0f}",
            ),
            ("all processed after (s)", lambda r: f"{r['processed_after']:.2f}"),
        ]
    if args.transactions:
        rows += [
            ("balance + reconcile (s)", lambda r: f"{r['ledger_balance_plus_reconcile_s']:.2f}"),
            ("finance summary (s)", lambda r: f"{r['ledger_finance_summary_s']:.2f}"),
        ]
    print()
    print(f"{'':28}" + "".join(f"{label:>16}" for label in labels))
    for name, fmt in rows:
        print(f"{name:28}" + "".join(f"{fmt(results[label]):>16}" for label in labels))
    print(
        f"targets: webhook p95 < 100 ms at {args.concurrency} concurrent; balance and reconciliation over "
        f"100,000 transactions within 5 s; load average {loadavg()}"
    )
    print(
        "sustained: every connection sends its next delivery as soon as the last is answered (a saturation "
        "test: latency = concurrency / throughput); bursts: all deliveries of a burst arrive at once; "
        "server CPU/delivery: CPU time of the web processes per delivery (sustained / bursts)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
