"""Payments benchmark: the Stripe webhook endpoint under 50 concurrent deliveries, and the ledger's
balance check and reconciliation aggregates over 100,000 transactions.

    .venv/bin/python bench/payouts.py                       # SQLite in a temporary directory
    .venv/bin/python bench/payouts.py --deliveries 2000 --concurrency 50 --transactions 100000
    DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/h6_bench .venv/bin/python bench/payouts.py

Webhooks: signed ``checkout.session.expired`` events (real HMAC-SHA256 signatures, verified by
``stripe.Webhook.construct_event``) are POSTed through the ASGI app in-process (httpx ASGITransport,
no sockets) by ``--concurrency`` senders; each is verified, stored once by id and enqueued. The
figure is the time of each request as its sender sees it (p50/p95/p99). Jobs are not run.

Ledger: ``--transactions`` balanced transactions (payment, refund, transfer, reversal; 2-3 entries
each) are bulk-inserted, then timed: the balance check (every transaction balanced, books zero per
currency), the per-booking aggregation that reconciliation compares with the provider, and the
admin finance summary.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "whsec_bench_secret"


def _setup_env(database_url: str | None) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="cadenza-bench-payouts-"))
    os.environ.update(
        {
            "MODE": "test",
            "VAR_DIR": str(tmp),
            "SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789-abcdef",
            "MIGRATE_ON_START": "false",
            "LOG_LEVEL": "WARNING",
            "STRIPE_SECRET_KEY": "sk_test_bench",
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "STRIPE_CONNECT_WEBHOOK_SECRET": "whsec_bench_connect",
            "DATABASE_URL": database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
        }
    )
    return tmp


def _sign(body: bytes) -> str:
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def bench_webhooks(deliveries: int, concurrency: int) -> dict[str, float]:
    import logging

    import httpx

    from marketplace import jobs
    from marketplace.app import create_app

    app = create_app()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    transport = httpx.ASGITransport(app=app)
    latencies: list[float] = []
    bodies = []
    for _ in range(deliveries):
        event = {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "type": "checkout.session.expired",
            "created": int(time.time()),
            "data": {"object": {"id": f"cs_test_{uuid.uuid4().hex[:16]}", "object": "checkout.session"}},
        }
        bodies.append(json.dumps(event).encode())
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    statuses: dict[int, int] = {}

    async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
        # Warm-up (engine, first statements).
        for body in bodies[:5]:
            await client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": _sign(body)})

        async def sender() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(
                    "/webhooks/stripe",
                    content=body,
                    headers={"Stripe-Signature": _sign(body), "Content-Type": "application/json"},
                )
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if isinstance(jobs.broker, jobs.StubBroker):
        jobs.broker.flush_all()
    from marketplace.db import dispose_engines

    await dispose_engines()
    return {
        "requests": len(latencies),
        "ok": statuses.get(200, 0),
        "p50_ms": statistics.median(latencies),
        "p95_ms": _pct(latencies, 95),
        "p99_ms": _pct(latencies, 99),
        "max_ms": max(latencies),
        "throughput_rps": len(latencies) / elapsed,
    }


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


async def _empty() -> None:
    from sqlalchemy import delete

    from marketplace.db import dispose_engines, transaction
    from payouts.models import LedgerEntry, LedgerTransaction, WebhookEvent

    async with transaction() as session:
        for model in (LedgerEntry, LedgerTransaction, WebhookEvent):
            await session.execute(delete(model))
    await dispose_engines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--transactions", type=int, default=100_000)
    args = parser.parse_args()
    tmp = _setup_env(os.environ.get("DATABASE_URL"))
    from marketplace.migrations import upgrade_head_sync
    from marketplace.settings import get_settings

    url = get_settings().database_url
    print(f"database: {url.split('@')[-1]}")
    upgrade_head_sync(url)
    asyncio.run(_empty())  # a reused DATABASE_URL starts from empty payments tables
    web = asyncio.run(bench_webhooks(args.deliveries, args.concurrency))
    print(
        f"webhooks: {web['requests']} deliveries, {args.concurrency} concurrent, {web['ok']} answered 200; "
        f"p50 {web['p50_ms']:.1f} ms, p95 {web['p95_ms']:.1f} ms, p99 {web['p99_ms']:.1f} ms, "
        f"max {web['max_ms']:.1f} ms; {web['throughput_rps']:.0f} deliveries/s"
    )
    led = asyncio.run(bench_ledger(args.transactions))
    print(
        f"ledger: {led['transactions']} transactions, {led['entries']} entries, {led['bookings']} bookings "
        f"(loaded in {led['load_s']:.1f} s); balance check {led['balance_check_s']:.2f} s, "
        f"reconcile aggregate {led['reconcile_aggregate_s']:.2f} s, together {led['balance_plus_reconcile_s']:.2f} s; "
        f"finance summary {led['finance_summary_s']:.2f} s"
    )
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
