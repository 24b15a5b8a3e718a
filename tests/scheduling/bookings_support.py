"""Builders for the booking tests: an approved tutor with an open calendar (and payouts enabled), and
students."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from marketplace.accounts.models import User
from marketplace.db import transaction
from scheduling.models import Availability, BookingMode
from tests.helpers import make_user
from tests.profiles.support import approved_tutor

ALL_DAY = {str(d): [["00:00", "24:00"]] for d in range(7)}
# Prices of tests.profiles.support.approved_tutor: 45 min 35.00, 60 min 45.00, trial 30 min 15.00 EUR.
PRICE_60 = 4500
PRICE_45 = 3500
TRIAL_PRICE = 1500


async def open_calendar(tutor_id: uuid.UUID, **fields: Any) -> None:
    values: dict[str, Any] = {
        "zone": "UTC",
        "weekly": ALL_DAY,
        "notice_minutes": 0,
        "horizon_days": 60,
        "booking_mode": BookingMode.instant,
        "free_cancel_hours": 24,
        "late_refund_percent": 50,
        **fields,
    }
    async with transaction() as session:
        session.add(Availability(tutor_id=tutor_id, **values))


async def enable_offline_payouts(tutor_id: uuid.UUID) -> None:
    """An enabled offline payout account: without one a tutor takes no bookings."""
    from payouts.models import PayoutAccount

    async with transaction() as session:
        session.add(
            PayoutAccount(
                tutor_id=tutor_id,
                provider="offline",
                account_id=f"acct_test_{tutor_id.hex[:12]}",
                charges_enabled=True,
                payouts_enabled=True,
                details_submitted=True,
                requirements_due=[],
            )
        )


async def bookable_tutor(
    email: str = "clara@example.com", name: str = "Clara Klavier", *, payouts: bool = True, **calendar: Any
) -> User:
    """An approved tutor with an open calendar and (unless ``payouts=False``) payouts enabled."""
    tutor, _profile = await approved_tutor(email=email, name=name, photo=False)
    await open_calendar(tutor.id, **calendar)
    if payouts:
        await enable_offline_payouts(tutor.id)
    return tutor


async def student(email: str = "sam@example.com", name: str = "Sam Student", tz: str = "Europe/Berlin") -> User:
    return await make_user(email=email, name=name, tz=tz)


def next_hour(days: int = 2, hour: int = 10) -> datetime:
    """A round UTC hour ``days`` from today (always bookable with the ALL_DAY calendar)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days, hours=hour)
