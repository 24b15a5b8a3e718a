"""Banning ends every session at once and is audited."""

from sqlalchemy import select

from marketplace.accounts.services import user_ban, user_unban
from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction
from tests.helpers import log_in, make_user


async def test_ban_revokes_sessions_refuses_log_in_and_is_audited(client):
    admin = await make_user(email="root@example.com", role="admin")
    ana = await make_user(email="ana@example.com")
    await log_in(client, "ana@example.com", "correct horse battery")
    assert (await client.get("/dashboard")).status_code == 200
    async with transaction() as session:
        await user_ban(session, admin=admin, user_id=ana.id, reason="spam")
    assert (await client.get("/dashboard", follow_redirects=False)).status_code in (302, 303)
    assert (await log_in(client, "ana@example.com", "correct horse battery")).status_code == 422
    async with transaction() as session:
        await user_unban(session, admin=admin, user_id=ana.id, reason="appeal accepted")
    async with session_factory()() as session:
        entries = (await session.execute(select(AuditEntry).order_by(AuditEntry.created_at))).scalars().all()
    assert [(e.action, e.actor_id, e.target_id, e.reason) for e in entries] == [
        ("user.ban", admin.id, str(ana.id), "spam"),
        ("user.unban", admin.id, str(ana.id), "appeal accepted"),
    ]
    assert entries[0].before["banned_at"] is None and entries[0].after["banned_at"]


async def test_ban_needs_a_reason_and_cannot_target_oneself():
    import pytest

    from marketplace.errors import Forbidden, ValidationFailed

    admin = await make_user(email="root@example.com", role="admin")
    ana = await make_user(email="ana@example.com")
    with pytest.raises(ValidationFailed):
        async with transaction() as session:
            await user_ban(session, admin=admin, user_id=ana.id, reason="  ")
    with pytest.raises(Forbidden):
        async with transaction() as session:
            await user_ban(session, admin=admin, user_id=admin.id, reason="oops")
