"""Start and stop the real application (`marketplace run`) as a subprocess for browser tests.

Shared by the pytest fixture in conftest.py and by take_screenshots.py.

With ``CADENZA_TEST_TRAVEL`` (an ISO instant) and ``MODE=test`` in its environment, the server's
clock starts at that instant and ticks on (time-machine, started in the server process before
uvicorn): ``python -m tests.e2e.server run ...`` is ``marketplace run ...`` on a travelling clock.
Without it the server is the plain ``marketplace`` command.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKETPLACE = ROOT / ".venv" / "bin" / "marketplace"
PYTHON = ROOT / ".venv" / "bin" / "python"
TRAVEL_ENV = "CADENZA_TEST_TRAVEL"
CHROMIUM = "/usr/bin/chromium"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - our own server
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def travelling(env: dict[str, str]) -> bool:
    return bool(env.get(TRAVEL_ENV)) and env.get("MODE") == "test"


def start_server(env: dict[str, str], log_path: Path) -> LiveServer:
    """Run `marketplace run` on a free port with ``env`` and wait until /healthz answers 200.

    The server gets BASE_URL = its own address, so links in mails point at it, and it migrates
    the database on start (a no-op when the schema is already at head). With CADENZA_TEST_TRAVEL
    (and MODE=test) in ``env`` its clock travels (see the module's docstring).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**env, "BASE_URL": url, "MIGRATE_ON_START": "true"}
    command = [str(PYTHON), "-m", "tests.e2e.server"] if travelling(env) else [str(MARKETPLACE)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*command, "run", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()  # the child holds its own descriptor
    server = LiveServer(url=url, process=process, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} during start-up:\n{server.log_tail()}")
        if _healthy(url):
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the server did not answer /healthz within {STARTUP_TIMEOUT:.0f}s:\n{server.log_tail()}")


def launch_chromium(playwright):
    """Debian's chromium (never a browser downloaded by `playwright install`)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def _travel_and_run() -> None:
    """``marketplace`` (the CLI, with this process's arguments) on a clock that starts at
    CADENZA_TEST_TRAVEL and ticks: only for the test mode."""
    from datetime import datetime

    import time_machine

    from marketplace.cli import main

    if not travelling(dict(os.environ)):
        raise SystemExit(f"{TRAVEL_ENV} (an ISO instant) and MODE=test are required")
    time_machine.travel(datetime.fromisoformat(os.environ[TRAVEL_ENV]), tick=True).start()
    sys.argv = ["marketplace", *sys.argv[1:]]
    main()


if __name__ == "__main__":
    _travel_and_run()
