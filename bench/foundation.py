"""Foundation benchmark for Cadenza: start-up time, idle memory, and throughput/latency.

Run with ``.venv/bin/python bench/foundation.py`` (or ``make bench``). Every server it starts
listens on 127.0.0.1 only, in a fresh temporary VAR_DIR that is removed at the end (also on
Ctrl-C and errors). See bench/README.md for what each figure means.

1. Start-up to first 200: the time from spawning ``marketplace run --workers N`` until
   ``GET /`` answers 200, on an empty database ("cold", includes the migrations) and on a
   migrated database with demo data ("warm", median of several starts).
2. Idle memory: RSS (and USS) of the master and worker processes after a short settle, and
   again after the load test.
3. Load: requests/s, p50 and p99 latency and non-2xx count for GET /bare (the floor: a bare
   Litestar route in the same app), GET / and GET /dashboard (signed in as the demo student),
   measured back-to-back in the same run with wrk, or a Python load generator without wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import multiprocessing
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin/ (this script runs with .venv/bin/python)
MARKETPLACE = BIN / "marketplace"
HOST = "127.0.0.1"  # the only address this benchmark ever talks to
SECRET_KEY = "bench-secret-key-for-local-measurements-only-0123456789"
STUDENT_EMAIL = "student@demo.cadenza.test"
STUDENT_PASSWORD = "cadenza-demo-2026"  # the demo password that `marketplace demo` prints
MIB = 1024 * 1024

# Lua for wrk: counts every non-2xx response (wrk's own summary treats 3xx as success, which
# would hide a lost session answering /dashboard with a redirect to /login) and prints the
# whole latency histogram (microsecond -> count), so that every statistic, and the merge of
# several rounds, is computed in Python the same way for wrk and for the Python generator.
WRK_LUA = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_SUMMARY %d %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration, summary.bytes, bad,
    e.connect, e.read, e.write, e.timeout, e.status))
  local parts = {}
  for i = 1, #latency do
    local value, count = latency(i)
    parts[#parts + 1] = string.format("%d:%d", value, count)
  end
  io.write("BENCH_HIST " .. table.concat(parts, ",") .. "\n")
end
"""


# ---------------------------------------------------------------------------------------------
# Cleanup: every server, load generator and temporary directory is registered here and torn
# down in reverse order at the end, on errors, on Ctrl-C and on SIGTERM.
# ---------------------------------------------------------------------------------------------
class Cleanup:
    def __init__(self) -> None:
        self.servers: list[Server] = []
        self.procs: list[subprocess.Popen] = []
        self.dirs: list[Path] = []

    def run(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(Exception):
                    proc.kill()
                    proc.wait(timeout=5)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.servers.clear()
        self.procs.clear()
        self.dirs.clear()


CLEANUP = Cleanup()


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# Environment and server processes
# ---------------------------------------------------------------------------------------------
def make_var_dir(label: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=f"cadenza-bench-{label}-"))
    CLEANUP.dirs.append(d)
    return d


def server_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "BROKER_URL", "MIGRATE_ON_START"}}
    env.update(
        VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite+aiosqlite:///{var_dir / 'cadenza.db'}",
        MODE="development",
        SECRET_KEY=SECRET_KEY,
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def prepare_demo(var_dir: Path, tutors: int) -> float:
    """Migrate and load the demo data into var_dir's database; returns the seconds it took."""
    cmd = [str(MARKETPLACE), "demo", "--tutors", str(tutors)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=server_env(var_dir), cwd=ROOT, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"`{shlex.join(cmd)}` failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return elapsed


def get_status(port: int, path: str = "/", timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@dataclass
class Server:
    var_dir: Path
    port: int
    workers: int
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    t_spawn: float = 0.0
    listen_s: float | None = None  # spawn -> first accepted TCP connection
    first_200_s: float | None = None  # spawn -> first GET / answered 200
    workers_spawned_s: float | None = None  # spawn -> first worker process created (master done)
    stop_s: float | None = None
    first_status: Counter = field(default_factory=Counter)

    @property
    def cmd(self) -> list[str]:
        return [str(MARKETPLACE), "run", "--host", HOST, "--port", str(self.port), "--workers", str(self.workers)]

    def start(self, timeout: float) -> float:
        self.log_path = self.var_dir / f"server-{self.port}.log"
        log = open(self.log_path, "wb")  # closed when the server stops
        self._log = log
        self.t_spawn = time.perf_counter()
        # A session of its own: Ctrl-C in the terminal reaches only this script, which then
        # stops the server's whole process group (master and workers) itself.
        self.proc = subprocess.Popen(
            self.cmd,
            env=server_env(self.var_dir),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        CLEANUP.servers.append(self)
        deadline = self.t_spawn + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no 200 from GET / within {timeout:.0f} s:\n{self.log_tail()}")
            if self.listen_s is None:
                try:
                    socket.create_connection((HOST, self.port), timeout=0.5).close()
                    self.listen_s = time.perf_counter() - self.t_spawn
                except OSError:
                    time.sleep(0.01)
                    continue
            try:
                # A request that waits in the backlog is answered as soon as a worker is ready,
                # so a generous timeout keeps this exact.
                status = get_status(self.port, "/", timeout=min(10.0, max(0.5, deadline - time.perf_counter())))
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)
                continue
            self.first_status[status] += 1
            if status == 200:
                self.first_200_s = time.perf_counter() - self.t_spawn
                with contextlib.suppress(psutil.Error):
                    master = psutil.Process(self.proc.pid)  # create times share one clock
                    created = [c.create_time() for c in master.children() if describe(c, self.proc.pid) == "worker"]
                    if created:
                        self.workers_spawned_s = min(created) - master.create_time()
                return self.first_200_s
            time.sleep(0.01)

    def processes(self) -> list[psutil.Process]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            t0 = time.perf_counter()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created
            try:
                self.proc.wait(timeout=timeout)
                self.stop_s = time.perf_counter() - t0
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Workers left behind by a master that died first are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._log.close()
        if self in CLEANUP.servers:
            CLEANUP.servers.remove(self)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def server_cpu_seconds(server: Server) -> float:
    total = 0.0
    for p in server.processes():
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def machine_busy_cpu() -> float:
    """Busy CPU seconds of the whole machine since boot (all CPUs, everything but idle and iowait)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _pool_cpu(pool) -> float:
    """CPU seconds of the Python load generator's worker processes (0 without a pool)."""
    total = 0.0
    for proc in getattr(pool, "_pool", []) if pool is not None else []:
        with contextlib.suppress(psutil.Error, ValueError):
            t = psutil.Process(proc.pid).cpu_times()
            total += t.user + t.system
    return total


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def describe(proc: psutil.Process, root_pid: int) -> str:
    if proc.pid == root_pid:
        return "master"
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return "?"
    if "resource_tracker" in cmdline:
        return "tracker"
    if "spawn_main" in cmdline or "multiprocessing" in cmdline:
        return "worker"
    return cmdline[:60]


def memory_snapshot(server: Server) -> list[dict]:
    rows = []
    root_pid = server.proc.pid
    for p in server.processes():
        try:
            info = p.memory_full_info()
            rows.append({"pid": p.pid, "role": describe(p, root_pid), "rss": info.rss / MIB, "uss": info.uss / MIB})
        except psutil.Error:
            continue
    return rows


# ---------------------------------------------------------------------------------------------
# Load generation
# ---------------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    name: str
    path: str
    requests: int = 0
    seconds: float = 0.0
    non2xx: int = 0
    errors: int = 0  # socket errors and timeouts
    hist: Counter = field(default_factory=Counter)  # latency in microseconds -> count
    statuses: Counter = field(default_factory=Counter)
    server_cpu: float = 0.0  # CPU seconds (user + system) of all server processes during the run
    loadgen_cpu: float | None = 0.0  # CPU seconds of the load generator (None: not measured)
    machine_cpu: float = 0.0  # busy CPU seconds of the whole machine (all processes) during the run

    def add(self, other: LoadResult) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.non2xx += other.non2xx
        self.errors += other.errors
        self.hist.update(other.hist)
        self.statuses.update(other.statuses)
        self.server_cpu += other.server_cpu
        self.machine_cpu += other.machine_cpu
        if self.loadgen_cpu is not None and other.loadgen_cpu is not None:
            self.loadgen_cpu += other.loadgen_cpu
        else:
            self.loadgen_cpu = None

    @property
    def server_ms_per_request(self) -> float:
        return self.server_cpu * 1000 / self.requests if self.requests else float("nan")

    @property
    def server_cores(self) -> float:
        return self.server_cpu / self.seconds if self.seconds else float("nan")

    @property
    def other_cores(self) -> float | None:
        """CPU used by everything else on the machine during the run (should be ~0)."""
        if not self.seconds or self.loadgen_cpu is None:
            return None
        return max(0.0, (self.machine_cpu - self.server_cpu - self.loadgen_cpu) / self.seconds)

    @property
    def loadgen_cores(self) -> float | None:
        return self.loadgen_cpu / self.seconds if self.seconds and self.loadgen_cpu is not None else None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile latency in milliseconds (nearest rank over the histogram)."""
        total = sum(self.hist.values())
        if not total:
            return float("nan")
        rank = max(1, -(-p * total // 100))  # ceil(p/100 * total)
        seen = 0
        for value in sorted(self.hist):
            seen += self.hist[value]
            if seen >= rank:
                return value / 1000.0
        return max(self.hist) / 1000.0


def run_wrk(
    wrk: str,
    port: int,
    path: str,
    cookie: str | None,
    *,
    threads: int,
    connections: int,
    seconds: float,
    lua: Path,
    extra_headers: list[str],
) -> tuple[LoadResult, list[str]]:
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(lua),
    ]
    for h in extra_headers:
        cmd += ["-H", h]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    cmd.append(f"http://{HOST}:{port}{path}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    CLEANUP.procs.append(proc)
    try:
        out, err = proc.communicate(timeout=seconds + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        CLEANUP.procs.remove(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err}\n{out}")
    result = LoadResult(name="", path=path)
    for line in out.splitlines():
        if line.startswith("BENCH_SUMMARY "):
            req, dur_us, _bytes, bad, c, r, w, t, _s = (int(x) for x in line.split()[1:])
            result.requests, result.seconds, result.non2xx = req, dur_us / 1e6, bad
            result.errors = c + r + w + t
        elif line.startswith("BENCH_HIST"):
            for item in line.split(" ", 1)[1].split(",") if " " in line else []:
                if item:
                    v, n = item.split(":")
                    result.hist[int(v)] += int(n)
    return result, cmd


# ---- the Python fallback: raw asyncio sockets, HTTP/1.1 keep-alive --------------------------
async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()  # until EOF
        keep_alive = False
    return status, keep_alive


async def _py_load(port: int, path: str, cookie: str | None, connections: int, seconds: float, headers: list[str]):
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: cadenza-bench\r\n"
    for h in headers:
        request += f"{h}\r\n"
    if cookie:
        request += f"Cookie: {cookie}\r\n"
    request = (request + "\r\n").encode()
    hist: Counter = Counter()
    statuses: Counter = Counter()
    counters = {"errors": 0}
    start = time.perf_counter()
    deadline = start + seconds

    async def one_connection() -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                t0 = time.perf_counter()
                writer.write(request)
                status, keep_alive = await _read_response(reader)
                t1 = time.perf_counter()
                if t1 <= deadline:
                    hist[int((t1 - t0) * 1e6)] += 1
                    statuses[status] += 1
                if not keep_alive:
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                counters["errors"] += 1
                if writer is not None:
                    writer.close()
                writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    tasks = [asyncio.create_task(one_connection()) for _ in range(connections)]
    _done, pending = await asyncio.wait(tasks, timeout=seconds + 5)
    for task in pending:  # a request stuck past the deadline + 5 s counts as an error
        task.cancel()
        counters["errors"] += 1
    await asyncio.gather(*pending, return_exceptions=True)
    return dict(hist), dict(statuses), counters["errors"], min(time.perf_counter(), deadline) - start


def _py_load_process(args: tuple) -> tuple:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(_py_load(*args))


def run_python_load(
    pool: multiprocessing.pool.Pool | None,
    port: int,
    path: str,
    cookie: str | None,
    *,
    procs: int,
    connections: int,
    seconds: float,
    extra_headers: list[str],
) -> LoadResult:
    per = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    jobs = [(port, path, cookie, n, seconds, extra_headers) for n in per if n]
    if pool is None:
        parts = [_py_load_process(jobs[0])]
    else:
        parts = pool.map(_py_load_process, jobs)
    result = LoadResult(name="", path=path)
    for hist, statuses, errors, elapsed in parts:
        result.hist.update(hist)
        result.statuses.update(statuses)
        result.errors += errors
        result.seconds = max(result.seconds, elapsed)
    result.requests = sum(result.hist.values())
    result.non2xx = sum(n for s, n in result.statuses.items() if not 200 <= s <= 299)
    return result


# ---------------------------------------------------------------------------------------------
# Log-in as the demo student
# ---------------------------------------------------------------------------------------------
def login_cookie(port: int) -> str:
    import httpx

    base = f"http://{HOST}:{port}"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
        page = client.get("/login")
        page.raise_for_status()
        match = re.search(r'name="_csrf_token"\s+value="([^"]+)"', page.text)
        if not match:
            raise RuntimeError("no _csrf_token field on GET /login")
        resp = client.post(
            "/login",
            data={"_csrf_token": match.group(1), "email": STUDENT_EMAIL, "password": STUDENT_PASSWORD},
        )
        if resp.status_code not in (302, 303) or not resp.headers.get("location", "").endswith("/dashboard"):
            raise RuntimeError(f"log-in failed: {resp.status_code} {resp.headers.get('location')!r}")
        jar = {c.name: c.value for c in client.cookies.jar}
        if "cadenza_session" not in jar or "csrftoken" not in jar:
            raise RuntimeError(f"log-in did not set the expected cookies: {sorted(jar)}")
        cookie = "; ".join(f"{k}={jar[k]}" for k in ("cadenza_session", "csrftoken"))
        check = client.get("/dashboard", headers={"Cookie": cookie})
        if check.status_code != 200:
            raise RuntimeError(f"GET /dashboard as the student answered {check.status_code}, not 200")
        return cookie


# ---------------------------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------------------------
def hr(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 86 - len(title)), flush=True)


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:6.2f} s"


def table(headers: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=True))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds of load per endpoint")
    ap.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds of load per endpoint first")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="split --duration into this many interleaved rounds (bare, home, dashboard, bare, ...)",
    )
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (or Python load processes)")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--warm-starts", type=int, default=3, help="warm start-ups to take the median of")
    ap.add_argument("--cold-starts", type=int, default=1, help="cold start-ups (each on a fresh empty DB)")
    ap.add_argument("--tutors", type=int, default=50, help="`marketplace demo --tutors`")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait before measuring idle memory")
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also load this anonymous page, side by side with the others (e.g. profile=/tutors/clara-klavier)",
    )
    ap.add_argument("--startup-timeout", type=float, default=60.0)
    ap.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="auto: wrk when /usr/bin/wrk (or wrk on PATH) exists, else the Python generator",
    )
    ap.add_argument(
        "--gzip",
        action="store_true",
        help="send Accept-Encoding: gzip like a browser (pages over 1 KiB are then compressed)",
    )
    args = ap.parse_args()
    if args.duration <= 0 or args.connections < 1 or args.threads < 1 or args.rounds < 1:
        ap.error("--duration, --connections, --threads and --rounds must be positive")
    if args.connections > 1024 or args.duration > 600 or args.rounds > 20 or args.threads > 16:
        ap.error("bounded: at most 1024 connections, 600 s, 20 rounds, 16 threads")
    if args.warm_starts < 1 or args.warm_starts > 20 or args.cold_starts < 0 or args.cold_starts > 10:
        ap.error("--warm-starts must be 1..20 and --cold-starts 0..10")
    if args.workers < 1 or args.workers > 16:
        ap.error("--workers must be 1..16")
    if any("=" not in e or not e.partition("=")[2].startswith("/") for e in args.extra):
        ap.error("--extra takes NAME=/path")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Also when started in the background by a shell that ignores SIGINT for its jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    wrk = shutil.which("wrk") or ("/usr/bin/wrk" if os.path.exists("/usr/bin/wrk") else None)
    if args.loadgen == "wrk" and not wrk:
        print("error: --loadgen wrk but wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    use_wrk = wrk is not None and args.loadgen != "python"
    wrk_version = "-"
    if use_wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
        wrk_version = (out.stdout + out.stderr).splitlines()[0].strip()
    if not MARKETPLACE.exists():
        print(f"error: {MARKETPLACE} not found; run `make setup` first", file=sys.stderr)
        return 2

    started = time.perf_counter()
    bench_cmd = shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    hr("Cadenza foundation benchmark")
    print(f"command      : {bench_cmd}")
    print(
        f"machine      : {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"({psutil.cpu_count(logical=False)} physical), {psutil.virtual_memory().total / 2**30:.1f} GiB RAM"
    )
    print(f"python       : {platform.python_version()} ({sys.executable})")
    fallback = "Python fallback (asyncio raw sockets" + (", uvloop)" if _has_uvloop() else ")")
    print(f"load gen     : {wrk_version if use_wrk else fallback}")
    print(
        f"settings     : workers={args.workers} connections={args.connections} duration={args.duration:g}s "
        f"warmup={args.warmup:g}s rounds={args.rounds} threads={args.threads} gzip={args.gzip}"
    )

    # ---- 1. start-up ---------------------------------------------------------------------
    hr("1. Start-up to first 200 on GET /")
    warm_dir = make_var_dir("warm")
    demo_s = prepare_demo(warm_dir, args.tutors)
    print(
        f"prepared warm DB: `marketplace demo --tutors {args.tutors}` took {demo_s:.2f} s "
        f"(it also warms the OS file cache, so the cold start below is not a cold-disk start)"
    )

    cold: list[Server] = []
    for i in range(args.cold_starts):
        srv = Server(make_var_dir(f"cold{i}"), free_port(), args.workers)
        srv.start(args.startup_timeout)
        srv.stop()
        cold.append(srv)
        revision, tables = _schema(srv.var_dir / "cadenza.db")
        print(
            f"cold start {i + 1} (empty DB, incl. migrations): first 200 after {srv.first_200_s:.2f} s "
            f"({_phases(srv)}; stopped in {fmt_s(srv.stop_s).strip()}); it migrated the empty DB to "
            f"revision {revision} ({tables} tables)"
        )

    warm: list[Server] = []
    live: Server | None = None
    for i in range(args.warm_starts):
        srv = Server(warm_dir, free_port(), args.workers)
        srv.start(args.startup_timeout)
        warm.append(srv)
        print(
            f"warm start {i + 1} (migrated DB with demo data): first 200 after {srv.first_200_s:.2f} s "
            f"({_phases(srv)})",
            end="",
        )
        if i < args.warm_starts - 1:
            srv.stop()
            print(f"; stopped in {fmt_s(srv.stop_s).strip()}")
        else:
            live = srv  # the last one stays up for the memory and load measurements
            print("; kept running for the next sections")
    assert live is not None
    print(
        f"server command: {shlex.join(live.cmd)}  (env: MODE=development LOG_LEVEL=WARNING "
        f"VAR_DIR=<tmp> DATABASE_URL=sqlite+aiosqlite:///<tmp>/cadenza.db SECRET_KEY=<{len(SECRET_KEY)} chars>)"
    )

    # ---- 2. idle memory --------------------------------------------------------------------
    hr("2. Idle memory")
    time.sleep(args.settle)
    idle = memory_snapshot(live)
    print(
        f"after start-up + {args.settle:g} s settle (RSS counts shared pages in every process; USS is "
        f"memory unique to the process):"
    )
    print(_memory_table(idle))

    # ---- 3. load -----------------------------------------------------------------------------
    hr("3. Throughput and latency under load")
    busy_before = psutil.cpu_percent(interval=1.0) * (os.cpu_count() or 1) / 100
    print(f"background: {busy_before:.2f} of {os.cpu_count()} CPUs busy in the second before the load (server idle)")
    if busy_before > 0.25:
        print(
            "WARNING: other processes are using the CPUs: req/s and latencies are unreliable; the server's "
            "CPU ms/request is the more robust figure. Re-run on a quiet machine."
        )
    cookie = login_cookie(live.port)
    print(
        f"logged in as {STUDENT_EMAIL}: Cookie cadenza_session=<{len(cookie)} chars incl. csrftoken>; "
        f"GET /dashboard -> 200"
    )
    endpoints = [("bare", "/bare", None), ("home", "/", None), ("dashboard", "/dashboard", cookie)]
    for spec in args.extra:
        name, _, path = spec.partition("=")
        status = get_status(live.port, path, timeout=10)
        if status != 200:
            raise RuntimeError(f"--extra {spec}: GET {path} answered {status}, not 200")
        endpoints.append((name, path, None))
    extra_headers = ["Accept-Encoding: gzip"] if args.gzip else []
    totals = {name: LoadResult(name=name, path=path) for name, path, _ in endpoints}
    commands: dict[str, list[str]] = {}
    lua = live.var_dir / "bench.lua"
    lua.write_text(WRK_LUA)
    pool = None
    if not use_wrk and args.threads > 1:
        pool = multiprocessing.get_context("spawn").Pool(args.threads)
    try:

        def load(path: str, ck: str | None, seconds: float) -> tuple[LoadResult, list[str] | None]:
            server_before = server_cpu_seconds(live)
            machine_before = machine_busy_cpu()
            children_before = _children_cpu()
            self_before = time.process_time()
            pool_before = _pool_cpu(pool)
            if use_wrk:
                res, cmd = run_wrk(
                    wrk,
                    live.port,
                    path,
                    ck,
                    threads=args.threads,
                    connections=args.connections,
                    seconds=seconds,
                    lua=lua,
                    extra_headers=extra_headers,
                )
                res.loadgen_cpu = _children_cpu() - children_before  # wrk, reaped by this process
            else:
                res = run_python_load(
                    pool,
                    live.port,
                    path,
                    ck,
                    procs=args.threads,
                    connections=args.connections,
                    seconds=seconds,
                    extra_headers=extra_headers,
                )
                cmd = None
                if pool is None:  # it ran in this process
                    res.loadgen_cpu = time.process_time() - self_before
                else:
                    res.loadgen_cpu = _pool_cpu(pool) - pool_before
            res.server_cpu = server_cpu_seconds(live) - server_before
            res.machine_cpu = machine_busy_cpu() - machine_before
            return res, cmd

        if args.warmup > 0:
            for _name, path, ck in endpoints:
                load(path, ck, args.warmup)
            print(f"warm-up: {args.warmup:g} s of load on each endpoint (not counted)")
        per_round = args.duration / args.rounds
        for r in range(args.rounds):
            for name, path, ck in endpoints:
                res, cmd = load(path, ck, per_round)
                totals[name].add(res)
                if cmd:
                    commands[name] = [
                        c if not c.startswith("Cookie:") else "Cookie: cadenza_session=...; csrftoken=..." for c in cmd
                    ]
                print(
                    f"round {r + 1}/{args.rounds} {name:<9} GET {path:<11} {res.rps:9.1f} req/s  "
                    f"p50 {res.percentile(50):7.2f} ms  p99 {res.percentile(99):7.2f} ms  "
                    f"non-2xx {res.non2xx}  errors {res.errors}  server CPU {res.server_ms_per_request:.2f} ms/req "
                    f"({res.server_cores:.2f} cores)  load gen {_cores(res.loadgen_cores)} cores  "
                    f"others {_cores(res.other_cores)} cores",
                    flush=True,
                )
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()

    after = memory_snapshot(live)
    live.stop()
    print(f"\nmemory after the load test:\n{_memory_table(after)}")
    print(f"server stopped in {fmt_s(live.stop_s).strip()}")

    # ---- summary ------------------------------------------------------------------------------
    hr("Summary")
    rows = []
    if cold:
        vals = [s.first_200_s for s in cold]
        rows.append(
            [
                "cold start incl. migrations (empty DB)",
                f"{statistics.median(vals):.2f} s",
                ", ".join(f"{v:.2f}" for v in vals),
            ]
        )
    vals = [s.first_200_s for s in warm]
    rows.append(
        [
            f"warm start (migrated DB), median of {len(vals)}",
            f"{statistics.median(vals):.2f} s",
            ", ".join(f"{v:.2f}" for v in vals),
        ]
    )
    print(table(["start-up: spawn -> first 200 on GET /", "value", "samples (s)"], rows, "lrl"))
    print()
    mem_rows = []
    for label, snap in (("idle", idle), ("after load", after)):
        parts = ", ".join(f"{m['role']} {m['rss']:.1f}" for m in snap)
        mem_rows.append([label, f"{sum(m['rss'] for m in snap):.1f}", f"{sum(m['uss'] for m in snap):.1f}", parts])
    print(table(["memory (MiB)", "RSS total", "USS total", "RSS per process"], mem_rows, "lrrl"))
    print()
    floor = totals["bare"].rps
    load_rows = []
    for name, path, _ in endpoints:
        t = totals[name]
        ratio = "1.00 x bare (floor)" if name == "bare" else f"{t.rps / floor:.2f} x bare" if floor else "-"
        load_rows.append(
            [
                f"GET {path}",
                f"{t.rps:.1f}",
                f"{t.percentile(50):.2f}",
                f"{t.percentile(99):.2f}",
                f"{t.non2xx}",
                f"{t.errors}",
                f"{t.requests}",
                f"{t.server_ms_per_request:.3f}",
                f"{t.server_cores:.2f}",
                _cores(t.loadgen_cores),
                _cores(t.other_cores),
                ratio,
            ]
        )
    print(
        table(
            [
                "endpoint",
                "req/s",
                "p50 ms",
                "p99 ms",
                "non-2xx",
                "errors",
                "requests",
                "srv CPU ms/req",
                "srv cores",
                "loadgen cores",
                "other cores",
                "vs floor",
            ],
            load_rows,
            "lrrrrrrrrrrl",
        )
    )
    for name, _path, _ck in endpoints:
        if name != "bare" and floor:
            print(f"  {name} = {totals[name].rps / floor:.2f} x bare")

    hr("Commands")
    print(f"benchmark : {bench_cmd}")
    print(f"server    : {shlex.join(live.cmd)}")
    if use_wrk:
        for name, cmd in commands.items():
            print(f"{name:<10}: {shlex.join(cmd)}")
    else:
        print(
            f"load      : Python asyncio generator, {args.connections} keep-alive connections in "
            f"{args.threads} process(es), {args.duration:g} s per endpoint"
        )

    hr("Notes")
    gen = f"wrk, {args.threads} thread(s)" if use_wrk else f"Python, {args.threads} process(es)"
    print(
        f"- This machine has {os.cpu_count()} CPU(s). The load generator ({gen}"
        f") runs on the same machine and competes with the {args.workers} server workers for CPU, so the "
        f"absolute req/s are a lower bound; the ratios to /bare are the figures to compare over time."
    )
    if not use_wrk:
        print(
            "- wrk is not used: the Python fallback generator is much more expensive per request than wrk "
            "and may itself be the bottleneck on /bare (install wrk: apt-get install -y wrk)."
        )
    print(
        "- srv CPU ms/req = CPU time (user+system) of the master and workers during the run / requests: "
        "the cost of one request, much less sensitive to the shared CPUs than req/s. 'cores' = CPU seconds "
        "per second of the run (server vs load generator)."
    )
    print(
        "- Database: SQLite in a temporary directory (no Redis): every /dashboard request reads its session "
        "and its user from the DB."
    )
    print(
        "- /bare skips sessions, CSRF-cookie and request-context middleware but goes through the same ASGI stack "
        "(uvicorn + Litestar + security headers)."
    )
    print(
        f"- Latency percentiles are nearest-rank over all requests; wrk counts 3xx as success, so non-2xx is "
        f"counted by a Lua hook. Accept-Encoding: {'gzip' if args.gzip else 'not sent (no compression)'}."
    )
    if any((t.other_cores or 0) > 0.25 for t in totals.values()):
        print(
            "- WARNING: other processes used CPU during the load ('other cores' column): req/s and latency "
            "were disturbed; compare srv CPU ms/req instead, or re-run on a quiet machine."
        )
    print(f"- Total benchmark time: {time.perf_counter() - started:.1f} s.")
    return 0


def _schema(db: Path) -> tuple[str, int]:
    """The Alembic revision and table count of a SQLite database (proof that migrations ran)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as conn:
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        try:
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        except sqlite3.Error:
            revision = "none"
    return revision, tables


def _phases(srv: Server) -> str:
    spawned = "?" if srv.workers_spawned_s is None else f"{srv.workers_spawned_s:.2f}"
    return f"workers spawned by the master at {spawned} s, port accepting at {srv.listen_s:.2f} s"


def _cores(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _memory_table(snap: list[dict]) -> str:
    names = {"master": "master (marketplace run: uvicorn supervisor)", "tracker": "multiprocessing resource tracker"}
    rows = [[str(m["pid"]), names.get(m["role"], m["role"]), f"{m['rss']:.1f}", f"{m['uss']:.1f}"] for m in snap]
    rows.append(["", "total", f"{sum(m['rss'] for m in snap):.1f}", f"{sum(m['uss'] for m in snap):.1f}"])
    return table(["pid", "process", "RSS MiB", "USS MiB"], rows, "llrr")


if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server and removing the temporary directories", file=sys.stderr)
        code = 130
    except Exception as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        CLEANUP.run()
    sys.exit(code)
