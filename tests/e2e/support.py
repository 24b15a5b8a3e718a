"""Helpers for the browser tests: accessibility checks, form steps, reading mail, database set-up.

Page steps select elements by id, name or form action, never by visible text, so that they work
in every language; the tests assert the visible text where it matters.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Locator, Page, Response

from tests import helpers

T = TypeVar("T")

PASSWORD = "correct horse battery"
BLOCKING_IMPACTS = ("serious", "critical")
LINK_RE = re.compile(r"https?://\S+?token=[\w-]+")

_axe = Axe()


# ---- database set-up from synchronous tests --------------------------------------------------


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from a synchronous test.

    It runs on a fresh event loop in a worker thread, so it never meets pytest-asyncio's loop or
    Playwright's; the database engine that marketplace.db creates for that loop is disposed there.
    """

    async def go() -> T:
        from marketplace.db import dispose_engines

        try:
            return await make_coro()
        finally:
            await dispose_engines()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


@dataclass(frozen=True)
class Account:
    email: str
    password: str


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def create_user(*, prefix: str, role: str = "student", verified: bool = True, **kw) -> Account:
    email = unique_email(prefix)
    run_sync(lambda: helpers.make_user(email=email, password=PASSWORD, role=role, verified=verified, **kw))
    return Account(email=email, password=PASSWORD)


# ---- accessibility ---------------------------------------------------------------------------


def assert_accessible(page: Page) -> None:
    """Run axe-core on the current page; fail on any violation of impact serious or critical."""
    results = _axe.run(page)
    blocking = [v for v in results.response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    for v in results.response["violations"]:
        if v not in blocking:  # reported (shown with the output of a failing test), not fatal
            print(f"axe {v['impact']}: {v['id']} on {page.url} ({len(v['nodes'])} node(s))")
    if not blocking:
        return
    lines = [f"{len(blocking)} serious/critical accessibility violation(s) on {page.url}:"]
    for violation in blocking:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            messages = [line.strip() for line in node.get("failureSummary", "").splitlines()[1:]]
            summary = " / ".join(line for line in messages if line)
            lines.append(f"    at {target}: {summary}")
    raise AssertionError("\n".join(lines))


# ---- page steps ------------------------------------------------------------------------------


def submit(page: Page, button: Locator) -> Response:
    """Press a form's submit button and return the response of the page it leads to
    (after redirects: the 303 of a successful POST is followed)."""
    with page.expect_navigation() as navigation:
        button.click()
    response = navigation.value
    assert response is not None, "the form submission did not load a page"
    return response


def sign_up(page: Page, *, name: str, email: str, password: str = PASSWORD) -> Response:
    """Fill the sign-up form that is open on ``page`` (as a student) and send it."""
    form = page.locator('form[action="/signup"]')
    form.locator("#role-student").check()
    form.locator("#f-display_name").fill(name)
    form.locator("#f-email").fill(email)
    form.locator("#f-password").fill(password)
    return submit(page, form.locator('button[type="submit"]'))


def log_in(page: Page, email: str, password: str) -> Response:
    page.goto("/login")
    form = page.locator('form[action="/login"]')
    form.locator("#f-email").fill(email)
    form.locator("#f-password").fill(password)
    return submit(page, form.locator('button[type="submit"]'))


def log_out(page: Page) -> Response:
    """The log-out button in the header (a CSRF-protected POST form)."""
    return submit(page, page.locator('header form[action="/logout"] button'))


def switch_language(page: Page, locale: str) -> Response:
    """The footer's language switcher."""
    page.locator("select#locale-switch").select_option(locale)
    return submit(page, page.locator('footer form[action="/locale"] button[type="submit"]'))


# ---- mail ------------------------------------------------------------------------------------


def link_from_admin_outbox(admin: Page, *, to: str, path: str) -> str:
    """Read the newest mail to ``to`` on /admin/outbox (as a signed-in admin) and return its link."""
    admin.goto("/admin/outbox")
    admin.locator("#outbox-to").fill(to)
    submit(admin, admin.locator('form[action="/admin/outbox"] button[type="submit"]'))
    mail = admin.locator("ol.outbox > li").filter(has=admin.locator(".mail-to", has_text=to)).first
    link = mail.locator(f'.mail-body a[href*="{path}?token="]').first
    href = link.get_attribute("href")
    assert href, f"no {path} link in the outbox mail to {to}"
    return href


def link_from_outbox_table(*, to: str, path: str) -> str:
    """Read the newest link to ``path`` mailed to ``to`` straight from the outbox table."""
    messages = run_sync(lambda: helpers.outbox(to))
    for message in reversed(messages):
        for link in LINK_RE.findall(message.body_text):
            if path in link:
                return link
    raise AssertionError(f"no {path} link mailed to {to}")
