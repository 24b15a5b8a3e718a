"""The demo gives every demo tutor enabled (offline) payouts, so demo bookings can be paid; running
it again adds nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory
from marketplace.demo import TUTOR_EMAIL, demo_create
from marketplace.ports import payments
from payouts.models import PayoutAccount


async def _accounts() -> list[tuple[str, bool, str]]:
    async with session_factory()() as session:
        rows = await session.execute(
            select(User.email, PayoutAccount.charges_enabled & PayoutAccount.payouts_enabled, PayoutAccount.provider)
            .outerjoin(PayoutAccount, PayoutAccount.tutor_id == User.id)
            .where(User.role == Role.tutor)
            .order_by(User.email)
        )
        return [tuple(r) for r in rows.all()]


async def test_every_demo_tutor_can_take_paid_bookings_and_the_demo_is_idempotent():
    await demo_create(tutors=6, students=3, seed=7)
    accounts = await _accounts()
    assert len(accounts) == 7  # Clara and six more
    assert all(ready and provider == "offline" for _email, ready, provider in accounts), accounts
    await demo_create(tutors=6, students=3, seed=7)
    assert await _accounts() == accounts
    async with session_factory()() as session:
        assert await session.scalar(select(func.count()).select_from(PayoutAccount)) == 7
        clara = await session.scalar(select(User.id).where(User.email == TUTOR_EMAIL))
        assert await payments().tutor_takes_paid_bookings(session, tutor_id=clara)
