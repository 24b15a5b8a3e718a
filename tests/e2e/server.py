"""Start and stop the real application (`marketplace run`) as a subprocess for browser tests.

Shared by the pytest fixture in conftest.py and by take_screenshots.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKETPLACE = ROOT / ".venv" / "bin" / "marketplace"
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


def start_server(env: dict[str, str], log_path: Path) -> LiveServer:
    """Run `marketplace run` on a free port with ``env`` and wait until /healthz answers 200.

    The server gets BASE_URL = its own address, so links in mails point at it, and it migrates
    the database on start (a no-op when the schema is already at head).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**env, "BASE_URL": url, "MIGRATE_ON_START": "true"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(MARKETPLACE), "run", "--host", "127.0.0.1", "--port", str(port)],
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
