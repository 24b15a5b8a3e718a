"""Lessons benchmark: the token endpoint and the LiveKit webhook endpoint over real HTTP.

Run with ``.venv/bin/python bench/lessons.py`` (``--pg-url`` for PostgreSQL; the database named
there is RESET). It migrates a fresh schema in a temporary VAR_DIR, creates a tutor, a student and
a lesson whose room is open, starts the real server (``marketplace run``, one uvicorn worker on
127.0.0.1) with LiveKit settings that point at a local fake Twirp server (so the lazy room
creation on the first token is answered), and measures:

1. ``POST /lessons/{id}/token`` (session, CSRF, participant and window checks, JWT signing),
   sequentially, ``--tokens`` requests: p50/p95/p99. Target: p95 under 20 ms.
2. ``POST /webhooks/livekit`` with real signatures (``AccessToken`` with the body's sha256), join
   and leave events of many participant sessions, ``--concurrency`` (50) deliveries at once,
   ``--webhooks`` in total: p50/p95/p99 and the status counts. Target: p95 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
API_KEY = "APIbench"
API_SECRET = "bench-livekit-secret-0123456789abcdef0123"
CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def fake_livekit() -> str:
    """A Twirp server on its own thread that answers CreateRoom (protobuf)."""
    from aiohttp import web
    from livekit.protocol import models, room

    async def handle(request: web.Request) -> web.Response:
        body = room.CreateRoomRequest.FromString(await request.read())
        reply = models.Room(name=body.name, sid="RM_bench")
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")

    ready = threading.Event()
    holder: dict[str, int] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_post("/twirp/{method:.+}", handle)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{holder['port']}"


def signed(body: str) -> str:
    from livekit import api

    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(API_KEY, API_SECRET).with_sha256(digest).with_ttl(timedelta(minutes=5)).to_jwt()


async def main_async(args: argparse.Namespace) -> int:
    import httpx

    from marketplace.migrations import upgrade_head_sync
    from tests.e2e.server import start_server
    from tests.helpers import make_user

    url = os.environ["DATABASE_URL"]
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        await conn.close()
    await asyncio.to_thread(upgrade_head_sync, url)

    from lessons.services import room_ensure
    from marketplace.db import dispose_engines, transaction
    from scheduling.models import Booking, BookingStatus

    tutor = await make_user(email="bench-tutor@example.com", role="tutor", name="Bench Tutor")
    student = await make_user(email="bench-student@example.com", name="Bench Student")
    starts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    async with transaction() as session:
        booking = Booking(
            tutor_id=tutor.id,
            student_id=student.id,
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            blocked_from=starts,
            blocked_until=starts + timedelta(hours=2),
            status=BookingStatus.confirmed,
            price_amount=4000,
            currency="EUR",
        )
        session.add(booking)
        await session.flush()
        room = (await room_ensure(session, booking=booking)).name
    await dispose_engines()

    server = start_server(dict(os.environ), Path(os.environ["VAR_DIR"]) / "server.log")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            page = await client.get("/login")
            token = CSRF_RE.search(page.text).group(1)
            response = await client.post(
                "/login", data={"_csrf_token": token, "email": student.email, "password": PASSWORD, "next": ""}
            )
            assert response.status_code in (200, 303), response.status_code
            page = await client.get("/practice")
            csrf = CSRF_RE.search(page.text).group(1)
            headers = {"x-csrftoken": csrf, "accept": "application/json"}
            path = f"/lessons/{booking.id}/token"
            for _ in range(20):  # warm-up (the first one creates the room)
                assert (await client.post(path, headers=headers)).status_code == 200
            times = []
            for _ in range(args.tokens):
                t0 = time.perf_counter()
                r = await client.post(path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
            print(
                f"token endpoint, {args.tokens} sequential requests: "
                f"p50 {pct(times, 50):.1f} ms, p95 {pct(times, 95):.1f} ms, p99 {pct(times, 99):.1f} ms"
            )

        bodies = []
        now = int(time.time())
        people = [str(tutor.id), str(student.id)]
        for i in range(args.webhooks):
            sid = f"PA_{i // 2}"
            event = "participant_joined" if i % 2 == 0 else "participant_left"
            body = json.dumps(
                {
                    "event": event,
                    "id": "EV_" + uuid.uuid4().hex,
                    "createdAt": str(now + i),
                    "room": {"name": room},
                    "participant": {"sid": sid, "identity": people[(i // 2) % 2], "joinedAt": str(now)},
                }
            )
            bodies.append((body, signed(body)))
        semaphore = asyncio.Semaphore(args.concurrency)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as hooks:

            async def send(body: str, auth: str) -> None:
                async with semaphore:
                    t0 = time.perf_counter()
                    r = await hooks.post(
                        "/webhooks/livekit",
                        content=body.encode(),
                        headers={"authorization": auth, "content-type": "application/webhook+json"},
                    )
                    latencies.append((time.perf_counter() - t0) * 1000)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

            t0 = time.perf_counter()
            await asyncio.gather(*(send(b, a) for b, a in bodies))
            wall = time.perf_counter() - t0
        print(
            f"webhook endpoint, {args.webhooks} deliveries, {args.concurrency} concurrent: "
            f"p50 {pct(latencies, 50):.1f} ms, p95 {pct(latencies, 95):.1f} ms, p99 {pct(latencies, 99):.1f} ms, "
            f"{args.webhooks / wall:.0f}/s, statuses {statuses}"
        )
    finally:
        server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="", help="PostgreSQL URL (the database is RESET)")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="cadenza-bench-lessons-")
    os.environ.update(
        VAR_DIR=var_dir,
        MODE="development",
        LOG_LEVEL="WARNING",
        SECRET_KEY="bench-secret-key-for-local-measurements-only-0123456789",
        DATABASE_URL=args.pg_url or f"sqlite+aiosqlite:///{var_dir}/bench.db",
        LIVEKIT_URL=fake_livekit(),
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
    )
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("BROKER_URL", "stub://")
    print(f"database: {'PostgreSQL' if args.pg_url else 'SQLite'}")
    try:
        return asyncio.run(main_async(args))
    finally:
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
