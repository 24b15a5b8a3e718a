"""Scheduling jobs: the periodic expiry of lapsed holds and unanswered requests."""

from __future__ import annotations

from marketplace import jobs, periodic
from marketplace.db import transaction

EXPIRY_SECONDS = 60


@periodic.every(EXPIRY_SECONDS)
@jobs.actor(queue_name="default", max_retries=3)
async def bookings_expire() -> None:
    """Expire lapsed holds and requests the tutor did not answer in time (idempotent: a second run
    finds nothing to do)."""
    from scheduling.bookings import booking_expire_lapsed

    async with transaction(write=True) as session:
        await booking_expire_lapsed(session)
