"""Helpers for tests that go through the HTTP app."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')
LINK_RE = re.compile(r"(https?://\S+?token=[\w-]+)")


async def csrf_token(client: Any, path: str = "/login") -> str:
    response = await client.get(path)
    match = CSRF_RE.search(response.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def post_form(client: Any, path: str, data: dict[str, str], *, page: str | None = None, **kw: Any):
    token = await csrf_token(client, page or path)
    return await client.post(path, data={"_csrf_token": token, **data}, **kw)


async def sign_up(
    client: Any,
    *,
    email: str = "ana@example.com",
    password: str = "correct horse battery",
    role: str = "student",
    name: str = "Ana Student",
    timezone: str = "Europe/Berlin",
    locale: str = "en",
):
    return await post_form(
        client,
        "/signup",
        {
            "email": email,
            "password": password,
            "display_name": name,
            "role": role,
            "timezone": timezone,
            "locale": locale,
        },
    )


async def log_in(client: Any, email: str, password: str, next_: str = ""):
    return await post_form(client, "/login", {"email": email, "password": password, "next": next_})


async def log_out(client: Any):
    return await post_form(client, "/logout", {}, page="/")


async def outbox(to: str) -> list[Any]:
    from marketplace.db import session_factory
    from marketplace.mail import OutboxMessage

    async with session_factory()() as session:
        rows = await session.execute(
            select(OutboxMessage).where(OutboxMessage.to_address == to).order_by(OutboxMessage.created_at)
        )
        return list(rows.scalars())


async def last_link(to: str, path: str) -> str:
    for message in reversed(await outbox(to)):
        match = LINK_RE.search(message.body_text)
        if match and path in match.group(1):
            return match.group(1).replace("http://testserver.local", "")
    raise AssertionError(f"no {path} link mailed to {to}")


async def make_user(
    *,
    email: str,
    password: str = "correct horse battery",
    role: str = "student",
    verified: bool = True,
    name: str = "Test User",
    locale: str = "en",
    tz: str = "UTC",
):
    from marketplace.accounts.models import Role, User
    from marketplace.accounts.services import password_hash
    from marketplace.db import transaction, utcnow

    async with transaction() as session:
        user = User(
            email=email,
            password_hash=password_hash(password),
            display_name=name,
            role=Role(role),
            timezone=tz,
            locale=locale,
            email_verified_at=utcnow() if verified else None,
        )
        session.add(user)
    return user


@contextlib.contextmanager
def count_statements():
    """Collect every SQL statement any engine runs inside the block (N+1 checks)."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)
