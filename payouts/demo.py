"""Demo payouts: every demo tutor gets an enabled account at the offline (TEST MODE) provider, so the
demo journey search -> profile -> slot -> checkout -> confirmation works on a fresh machine (a
tutor without enabled payouts takes no bookings).

Bulk loading only (``marketplace.demo.bulk_insert``): ``marketplace demo --tutors 100000`` stays
fast. Idempotent: tutors that already have a payout account are left alone. Account ids are derived
from the tutor id, so the same seed gives the same accounts.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.db import utcnow
from payouts.models import PayoutAccount

_NAMESPACE = uuid.UUID("6b1f3c52-1d0e-4f55-9a57-3f1e8f0a2c11")


async def demo_payout_accounts(session: AsyncSession) -> int:
    """An enabled offline payout account for every demo tutor without one; returns how many."""
    from marketplace.demo import DEMO_DOMAIN, bulk_insert

    tutor_ids = list(
        (
            await session.execute(
                select(User.id)
                .outerjoin(PayoutAccount, PayoutAccount.tutor_id == User.id)
                .where(User.role == Role.tutor, User.email.like(f"%@{DEMO_DOMAIN}"), PayoutAccount.id.is_(None))
                .order_by(User.email)
            )
        ).scalars()
    )
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid5(_NAMESPACE, str(tutor_id)),
            "tutor_id": tutor_id,
            "provider": "offline",
            "account_id": f"acct_test_demo_{tutor_id.hex}",
            "charges_enabled": True,
            "payouts_enabled": True,
            "details_submitted": True,
            "requirements_due": [],
            "status_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for tutor_id in tutor_ids
    ]
    return await bulk_insert(session, PayoutAccount.__table__, rows)
