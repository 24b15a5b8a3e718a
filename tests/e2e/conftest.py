"""Browser tests: the real server (`marketplace run`) in a subprocess, driven by Debian's chromium.

- ``live_server`` (package): the application on a free port, on the same DATABASE_URL (and
  REDIS_URL) as the test process, so tests create users and read the outbox directly. The
  tables are emptied before every test (``clean_state``) while the server keeps running.
- ``browser`` (package): Playwright (sync API) and chromium, started once for tests/e2e and
  stopped when its last test is done. Every test gets fresh browser contexts from ``new_page``.
- ``clean_state`` is overridden here by a synchronous twin. Playwright's sync API marks its own
  event loop as the running loop of the main thread for as long as Playwright is started (see
  wait_for_future in playwright/_impl/_greenlets.py), so pytest-asyncio can no longer run an
  async fixture there ("Runner.run() cannot be called from a running event loop"). The twin does
  the same work on a fresh loop in a worker thread (support.run_sync). For the same reason
  Playwright lives only as long as this package's tests: async tests that run after them need
  the main thread's loop free again.
- When /usr/bin/chromium is missing the tests are skipped, or fail when CI=true.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import empty_tables_and_redis, need_service
from tests.e2e.server import LiveServer, chromium_available, launch_chromium, start_server
from tests.e2e.support import Account, create_user, run_sync

DEFAULT_TIMEOUT_MS = 10_000


@pytest.fixture(autouse=True)
def clean_state(migrated_database: str) -> None:
    """Every browser test starts with empty tables (and an empty Redis db when REDIS_URL is set)."""
    run_sync(empty_tables_and_redis)


@pytest.fixture(scope="package")
def live_server(migrated_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log_path = tmp_path_factory.mktemp("e2e-server") / "server.log"
    server = start_server(dict(os.environ), log_path)
    yield server
    server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not chromium_available():
        need_service("chromium", "/usr/bin/chromium is not installed (make browser)")
    playwright = sync_playwright().start()
    try:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def new_page(
    request: pytest.FixtureRequest, browser: Browser, live_server: LiveServer, tmp_path_factory
) -> Iterator[Callable[..., Page]]:
    """``new_page(**context_options)``: a page in a fresh browser context (its own cookies).

    Defaults: English, zone Europe/Berlin, relative URLs resolved against the live server.
    On a failing test every page's screenshot and HTML are kept, and the server log is printed.
    """
    with page_factory(request, browser, live_server, tmp_path_factory) as make:
        yield make


@contextmanager
def page_factory(
    request: pytest.FixtureRequest, browser: Browser, live_server: LiveServer, tmp_path_factory
) -> Iterator[Callable[..., Page]]:
    """What ``new_page`` gives, against any live server (a fixture yields from this)."""
    contexts = []

    def make(**options) -> Page:
        options = {"base_url": live_server.url, "locale": "en-US", "timezone_id": "Europe/Berlin", **options}
        context = browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make

    if request.node.stash.get(_CALL_FAILED, False):
        _keep_failure_artifacts(request.node.name, contexts, tmp_path_factory.mktemp("e2e-failure"))
        print(f"--- server log ---\n{live_server.log_tail()}")
    for context in contexts:
        context.close()


def _keep_failure_artifacts(test_name: str, contexts, directory: Path) -> None:
    safe = re.sub(r"[^\w.-]+", "_", test_name)
    for c, context in enumerate(contexts):
        for p, page in enumerate(context.pages):
            stem = directory / f"{safe}-context{c}-page{p}"
            try:
                page.screenshot(path=f"{stem}.png", full_page=True)
                Path(f"{stem}.html").write_text(page.content())
                print(f"failure artifact: {stem}.png ({page.url})")
            except Exception as exc:  # the page may be gone; keep what we can
                print(f"no artifact for {page.url}: {exc}")


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@pytest.fixture
def admin() -> Account:
    return create_user(prefix="admin", role="admin", name="Ada Admin")


@pytest.fixture
def student() -> Account:
    """A student whose email address is already confirmed."""
    return create_user(prefix="student", name="Sam Student")
