"""Save screenshots of the home, sign-up and demo profile pages into docs/screenshots/ (not in the test run).

    .venv/bin/python -m tests.e2e.take_screenshots [output-directory]

Starts the real server on a throw-away SQLite database in a temporary directory and takes the
pictures with Debian's chromium, in English, at 1280x800.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.e2e.server import ROOT, chromium_available, launch_chromium, start_server

PAGES = {"home.png": "/", "signup.png": "/signup", "profile.png": "/tutors/clara-klavier"}


def main(out_dir: Path) -> None:
    if not chromium_available():
        raise SystemExit("/usr/bin/chromium is missing (make browser)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cadenza-screenshots-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "BROKER_URL", "SMTP_URL"}}
        env.update(
            MODE="test",
            VAR_DIR=tmp,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp}/screenshots.db",
            SECRET_KEY="screenshots-only-secret-key-0123456789abcdef",
            LOG_LEVEL="WARNING",
        )
        import subprocess

        subprocess.run(  # demo data, so that the profile page has a tutor to show
            [str(ROOT / ".venv" / "bin" / "marketplace"), "demo", "--tutors", "40"],
            env=env,
            check=True,
            capture_output=True,
        )
        server = start_server(env, Path(tmp) / "server.log")
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                context = browser.new_context(
                    base_url=server.url,
                    locale="en-US",
                    timezone_id="Europe/Berlin",
                    viewport={"width": 1280, "height": 800},
                )
                page = context.new_page()
                for name, path in PAGES.items():
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=out_dir / name, full_page=True)
                    print(f"saved {out_dir / name}")
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
