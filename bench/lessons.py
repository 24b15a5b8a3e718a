"""Lessons benchmark: the token endpoint and the LiveKit webhook endpoint over real HTTP.

Run with ``.venv/bin/python bench/lessons.py`` (SQLite only) or, for SQLite and PostgreSQL side by
side, ``.venv/bin/python bench/lessons.py --pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/h9_bench``
(the PostgreSQL database named there is RESET, and so is the Redis db of ``--redis-url``).

Each database runs in its own child process of this script. It migrates a fresh schema in a
temporary VAR_DIR, creates a tutor, a student and a lesson whose room is open and already prepared
on the server (as the job does after the confirmation), then starts the server as a production
deployment on this machine would run it: ``marketplace run --workers 2`` (uvicorn), sessions in
Redis (``REDIS_URL``), jobs on the Redis broker (``BROKER_URL``) with ``marketplace worker`` beside
the web processes; ``--redis-url ''`` keeps everything in-process instead. MODE stays
``development`` only because production mode demands secure (HTTPS-only) cookies, and this runs
over plain HTTP on 127.0.0.1. LiveKit settings point at a local fake Twirp server.

1. ``POST /lessons/{id}/token`` (session, CSRF, participant and window checks, one query, JWT
   signing), sequentially, ``--tokens`` requests: p50/p95/p99. Target: p95 under 20 ms.
2. ``POST /webhooks/livekit`` with real signatures (``AccessToken`` with the body's sha256), join
   and leave events of many participant sessions, ``--concurrency`` (50) keep-alive connections
   each sending its next delivery as soon as the previous one is answered, ``--webhooks`` in
   total (sustained: a saturation test), then ``--burst-count`` deliveries in bursts of
   ``--concurrency`` arriving at once, ``--burst-pause`` apart: p50/p95/p99 of each and the status
   counts. Target: p95 under 50 ms. Also the web processes' CPU time per delivery (from /proc: a
   figure that hardly depends on the machine's other load), how long after the last answer the jobs
   had applied every event, and a check that attendance is complete.

The load generator is a small raw-socket HTTP/1.1 client (cheaper than httpx), running on the same
two cores as the server: the latencies include that competition.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
API_KEY = "APIbench"
API_SECRET = "bench-livekit-secret-0123456789abcdef0123"
CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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
        site = web.TCPSite(runner, HOST, 0)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return f"http://{HOST}:{holder['port']}"


def signed(body: str) -> str:
    from livekit import api

    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(API_KEY, API_SECRET).with_sha256(digest).with_ttl(timedelta(minutes=10)).to_jwt()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - our own server
            return response.status == 200
    except OSError:
        return False


async def exchange(port: int, requests: list[bytes], connections: int) -> tuple[list[float], dict[int, int], float]:
    """Send ``requests`` over ``connections`` keep-alive connections, each sending its next request
    when the previous one is answered. (latencies in ms, status counts, wall seconds)"""
    from bench.foundation import _read_response

    pending = iter(requests)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for raw in pending:
                t0 = time.perf_counter()
                writer.write(raw)
                status, keep_alive = await _read_response(reader)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies, statuses, time.perf_counter() - t0


async def bursts(port: int, requests: list[bytes], size: int, pause: float) -> tuple[list[float], dict[int, int]]:
    """``size`` deliveries at once over ``size`` keep-alive connections, the next burst ``pause``
    seconds after the last answer of the previous one. (latencies in ms, status counts)"""
    from bench.foundation import _read_response

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    conns = [await asyncio.open_connection(HOST, port) for _ in range(size)]

    async def one(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes) -> None:
        reader, writer = conn
        t0 = time.perf_counter()
        writer.write(raw)
        status, _keep_alive = await _read_response(reader)
        latencies.append((time.perf_counter() - t0) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    try:
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            await asyncio.gather(*(one(conn, raw) for conn, raw in zip(conns, chunk, strict=False)))
            await asyncio.sleep(pause)
    finally:
        for _reader, writer in conns:
            writer.close()
    return latencies, statuses


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + body


def webhook_requests(port: int, *, room: str, people: list[str], count: int, first_sid: int) -> list[bytes]:
    now = int(time.time())
    out = []
    for i in range(count):
        sid = f"PA_{first_sid + i // 2}"
        body = json.dumps(
            {
                "event": "participant_joined" if i % 2 == 0 else "participant_left",
                "id": "EV_" + uuid.uuid4().hex,
                "createdAt": str(now + i),
                "room": {"name": room},
                "participant": {"sid": sid, "identity": people[(i // 2) % 2], "joinedAt": str(now)},
            }
        ).encode()
        headers = {"Authorization": signed(body.decode()), "Content-Type": "application/webhook+json"}
        out.append(post(port, "/webhooks/livekit", body, headers))
    return out


async def pending_and_sessions() -> tuple[int, int]:
    from sqlalchemy import func, select

    from lessons.models import AttendanceSession, WebhookEvent
    from marketplace.db import session_factory

    async with session_factory()() as session:
        pending = (await session.execute(select(func.count()).where(WebhookEvent.applied_at.is_(None)))).scalar_one()
        sessions = (
            await session.execute(select(func.count()).where(AttendanceSession.left_at.is_not(None)))
        ).scalar_one()
    return pending, sessions


async def wait_applied(seconds: float) -> tuple[int, int]:
    """Poll until no stored event is pending (or ``seconds`` passed): (pending, complete sessions)."""
    deadline = time.perf_counter() + seconds
    pending, sessions = await pending_and_sessions()
    for _ in range(1_000_000):
        if not pending or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.05)
        pending, sessions = await pending_and_sessions()
    return pending, sessions


def server_cpu_seconds(procs: list) -> float:
    """CPU seconds (user and system) used so far by the web server's processes: the uvicorn worker
    processes (children of ``marketplace run``) and the supervisor itself. Read from /proc (Linux);
    0.0 where it cannot be read. Unlike latencies, this figure hardly depends on what else the
    machine is running."""
    root = procs[0].pid
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == root or int(fields[1]) == root:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def start_processes(args: argparse.Namespace, env: dict[str, str], var_dir: Path, port: int, procs: list) -> None:
    """``marketplace run --workers N`` (and ``marketplace worker`` with the Redis broker); waits
    until /healthz answers. The processes are appended to ``procs`` as they start."""
    with (var_dir / "server.log").open("wb") as log:
        run = [str(BIN / "marketplace"), "run", "--host", HOST, "--port", str(port), "--workers", str(args.workers)]
        procs.append(subprocess.Popen(run, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        if args.redis_url:
            worker = [str(BIN / "marketplace"), "worker", "--processes", "1", "--threads", str(args.job_threads)]
            procs.append(subprocess.Popen(worker, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 60
    while not healthy(base):
        if time.monotonic() > deadline or procs[0].poll() is not None:
            raise RuntimeError((var_dir / "server.log").read_text(errors="replace")[-3000:])
        time.sleep(0.2)


async def run_single(args: argparse.Namespace) -> dict:
    import httpx

    from lessons.services import room_create_on_server
    from marketplace.db import dispose_engines, transaction
    from marketplace.migrations import upgrade_head_sync
    from scheduling.models import Booking, BookingStatus
    from tests.helpers import make_user

    url = os.environ["DATABASE_URL"]
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        await conn.close()
    if args.redis_url:
        from redis.asyncio import Redis

        redis = Redis.from_url(args.redis_url)
        await redis.flushdb()
        await redis.aclose()
    await asyncio.to_thread(upgrade_head_sync, url)

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
    async with transaction() as session:  # what the job does after the confirmation
        assert await room_create_on_server(session, booking_id=booking.id)
    from lessons.services import room_for_booking

    async with transaction(write=False) as session:
        room = (await room_for_booking(session, booking.id)).name
    await dispose_engines()

    port = free_port()
    base = f"http://{HOST}:{port}"
    env = {**os.environ, "BASE_URL": base, "MIGRATE_ON_START": "false"}
    var_dir = Path(os.environ["VAR_DIR"])
    procs: list[subprocess.Popen] = []
    try:
        await asyncio.to_thread(start_processes, args, env, var_dir, port, procs)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            page = await client.get("/login")
            token = CSRF_RE.search(page.text).group(1)
            response = await client.post(
                "/login", data={"_csrf_token": token, "email": student.email, "password": PASSWORD, "next": ""}
            )
            assert response.status_code in (200, 303), response.status_code
            page = await client.get("/practice")
            csrf = CSRF_RE.search(page.text).group(1)
            cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
        token_request = post(
            port,
            f"/lessons/{booking.id}/token",
            b"",
            {"Cookie": cookie, "X-CSRFToken": csrf, "Accept": "application/json"},
        )
        _lat, statuses, _wall = await exchange(port, [token_request] * 50, 1)  # warm-up
        assert statuses == {200: 50}, statuses
        token_times, statuses, _wall = await exchange(port, [token_request] * args.tokens, 1)
        assert statuses == {200: args.tokens}, statuses
        result = {
            "token_p50": pct(token_times, 50),
            "token_p95": pct(token_times, 95),
            "token_p99": pct(token_times, 99),
        }
        print(
            f"  token endpoint, {args.tokens} sequential requests: p50 {result['token_p50']:.1f} ms, "
            f"p95 {result['token_p95']:.1f} ms, p99 {result['token_p99']:.1f} ms",
            flush=True,
        )

        people = [str(tutor.id), str(student.id)]
        warm = webhook_requests(port, room=room, people=people, count=200, first_sid=1_000_000)
        hooks = webhook_requests(port, room=room, people=people, count=args.webhooks, first_sid=0)
        _lat, statuses, _wall = await exchange(port, warm, args.concurrency)
        assert statuses == {200: len(warm)}, statuses
        await wait_applied(60)  # the warm-up's jobs finish before the measurement
        load_before = loadavg()
        cpu_before = server_cpu_seconds(procs)
        latencies, statuses, wall = await exchange(port, hooks, args.concurrency)
        t_answered = time.perf_counter()
        cpu_sustained = server_cpu_seconds(procs) - cpu_before
        pending, sessions = await wait_applied(300)
        applied_after = time.perf_counter() - t_answered
        burst_hooks = webhook_requests(port, room=room, people=people, count=args.burst_count, first_sid=2_000_000)
        cpu_before = server_cpu_seconds(procs)
        burst_latencies, burst_statuses = await bursts(port, burst_hooks, args.concurrency, args.burst_pause)
        cpu_bursts = server_cpu_seconds(procs) - cpu_before
        assert burst_statuses == {200: len(burst_hooks)}, burst_statuses
        pending, sessions = await wait_applied(300)
        result.update(
            burst_p50=pct(burst_latencies, 50),
            burst_p95=pct(burst_latencies, 95),
            burst_p99=pct(burst_latencies, 99),
            webhook_p50=pct(latencies, 50),
            webhook_p95=pct(latencies, 95),
            webhook_p99=pct(latencies, 99),
            webhook_rate=args.webhooks / wall,
            statuses={str(k): v for k, v in statuses.items()},
            applied_after=applied_after,
            pending=pending,
            sessions_ok=sessions == (len(warm) + len(hooks) + len(burst_hooks)) // 2,
            load=load_before,
            cpu_per_webhook_us=cpu_sustained / len(hooks) * 1e6,
            cpu_per_burst_webhook_us=cpu_bursts / len(burst_hooks) * 1e6,
        )
        print(
            f"  webhook endpoint, {args.webhooks} deliveries, {args.concurrency} concurrent: "
            f"p50 {result['webhook_p50']:.1f} ms, p95 {result['webhook_p95']:.1f} ms, "
            f"p99 {result['webhook_p99']:.1f} ms, {result['webhook_rate']:.0f}/s, statuses {statuses}; "
            f"all applied by the jobs {applied_after:.2f} s after the last answer "
            f"(pending {pending}); web server CPU {result['cpu_per_webhook_us']:.0f} us per delivery; "
            f"load average before {load_before}",
            flush=True,
        )
        print(
            f"  webhook endpoint, bursts of {args.concurrency} deliveries at once, {args.burst_pause * 1000:.0f} ms "
            f"apart, {args.burst_count} in total: p50 {result['burst_p50']:.1f} ms, p95 {result['burst_p95']:.1f} ms, "
            f"p99 {result['burst_p99']:.1f} ms; attendance complete: {result['sessions_ok']}",
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


def single(args: argparse.Namespace) -> int:
    var_dir = tempfile.mkdtemp(prefix="cadenza-bench-lessons-")
    os.environ.update(
        VAR_DIR=var_dir,
        MODE="development",
        LOG_LEVEL="WARNING",
        SECRET_KEY="bench-secret-key-for-local-measurements-only-0123456789",
        DATABASE_URL=args.single,
        LIVEKIT_URL=fake_livekit(),
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
    )
    if args.redis_url:
        os.environ.update(REDIS_URL=args.redis_url, BROKER_URL=args.redis_url)
    else:
        os.environ.pop("REDIS_URL", None)
        os.environ["BROKER_URL"] = "stub://"
    try:
        result = asyncio.run(run_single(args))
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    finally:
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="", help="also PostgreSQL at this URL (the database is RESET)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/4",
        help="sessions and the job broker (this Redis db is FLUSHED); '' for in-process jobs and database sessions",
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--job-threads", type=int, default=2, help="threads of the Dramatiq worker process")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--webhooks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50, help="connections; also the burst size")
    parser.add_argument("--burst-count", type=int, default=1000, help="deliveries sent in bursts")
    parser.add_argument("--burst-pause", type=float, default=0.1, help="seconds between bursts")
    parser.add_argument("--single", default="", help=argparse.SUPPRESS)  # one database, in a child
    args = parser.parse_args()
    if args.single:
        return single(args)
    databases = [("SQLite", "")]
    if args.pg_url:
        databases.append(("PostgreSQL", args.pg_url))
    setup = f"{args.workers} uvicorn workers, " + (
        f"Redis sessions and broker ({args.redis_url}) with 1 worker process x {args.job_threads} threads"
        if args.redis_url
        else "in-process jobs, database sessions"
    )
    print(f"{setup}; {os.cpu_count()} CPUs; load average {loadavg()}", flush=True)
    results = {}
    for label, url in databases:
        print(f"{label}:", flush=True)
        with tempfile.TemporaryDirectory(prefix="cadenza-bench-lessons-db-") as tmp:
            db_url = url or f"sqlite+aiosqlite:///{tmp}/bench.db"
            command = [sys.executable, __file__, "--single", db_url, "--redis-url", args.redis_url]
            command += ["--workers", str(args.workers), "--job-threads", str(args.job_threads)]
            command += ["--tokens", str(args.tokens), "--webhooks", str(args.webhooks)]
            command += ["--concurrency", str(args.concurrency), "--burst-count", str(args.burst_count)]
            command += ["--burst-pause", str(args.burst_pause)]
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
    rows = [
        ("token p50 / p95 (ms)", lambda r: f"{r['token_p50']:.1f} / {r['token_p95']:.1f}"),
        ("webhook sustained p50/p95", lambda r: f"{r['webhook_p50']:.1f} / {r['webhook_p95']:.1f}"),
        ("webhook sustained p99 (ms)", lambda r: f"{r['webhook_p99']:.1f}"),
        ("webhook sustained per s", lambda r: f"{r['webhook_rate']:.0f}"),
        ("webhook bursts p50/p95", lambda r: f"{r['burst_p50']:.1f} / {r['burst_p95']:.1f}"),
        ("webhook bursts p99 (ms)", lambda r: f"{r['burst_p99']:.1f}"),
        ("server CPU/delivery (us)", lambda r: f"{r['cpu_per_webhook_us']:.0f} / {r['cpu_per_burst_webhook_us']:.0f}"),
        ("all applied after (s)", lambda r: f"{r['applied_after']:.2f}"),
        ("attendance complete", lambda r: "yes" if r["sessions_ok"] and not r["pending"] else "NO"),
    ]
    print()
    print(f"{'':26}" + "".join(f"{label:>16}" for label in labels))
    for name, fmt in rows:
        print(f"{name:26}" + "".join(f"{fmt(results[label]):>16}" for label in labels))
    print(f"targets: token p95 < 20 ms; webhook p95 < 50 ms at {args.concurrency} concurrent; load average {loadavg()}")
    print(
        "sustained: every connection sends its next delivery as soon as the last is answered (a saturation "
        "test: latency = concurrency / throughput); bursts: all deliveries of a burst arrive at once; "
        "server CPU/delivery: CPU time of the web processes per delivery (sustained / bursts)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
