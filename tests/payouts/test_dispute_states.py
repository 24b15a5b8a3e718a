"""The booking's dispute states: a student's dispute moves the lesson to ``disputed`` (completion,
no-show and the attendance jobs leave it alone), an admin's resolution to ``resolved``; both show on
the lesson pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace.accounts.models import User
from marketplace.db import session_factory, transaction
from marketplace.errors import Conflict
from payouts.models import TransferStatus
from payouts.services import checkout_start, dispute_open, dispute_resolve, offline_checkout_pay
from scheduling import bookings
from scheduling.models import BookingStatus
from tests.helpers import log_in, make_user
from tests.payouts.support import held_booking, ledger_sums, load_booking, load_payment, setup_held
from tests.scheduling.bookings_support import student

PASSWORD = "correct horse battery"
REASON = "The tutor did not show up for most of the lesson."


async def _paid(drain_jobs):
    tutor, learner, booking = await setup_held()
    async with session_factory()() as session:
        row = await session.get(User, learner.id)
    url = await checkout_start(booking_id=booking.id, student=row)
    await offline_checkout_pay(session_id=url.rsplit("/", 1)[1], student=row)
    drain_jobs()
    return tutor, learner, await load_booking(booking.id)


async def load_user(email: str) -> User:
    async with session_factory()() as session:
        return await session.scalar(select(User).where(User.email == email))


async def _dispute(learner: User, booking, now):
    async with transaction() as session:
        row = await session.get(User, learner.id)
        return await dispute_open(session, student=row, booking_id=booking.id, reason=REASON, now=now)


async def test_a_dispute_makes_the_lesson_disputed_and_completion_leaves_it_alone(client, drain_jobs):
    _tutor, learner, booking = await _paid(drain_jobs)
    during = booking.starts_at + timedelta(minutes=30)
    dispute = await _dispute(learner, booking, during)
    assert (await load_booking(booking.id)).status == BookingStatus.disputed
    for verb in (
        lambda s: bookings.booking_complete(s, booking_id=booking.id, at=booking.ends_at),
        lambda s: bookings.booking_no_show(s, booking_id=booking.id, absent="student", at=booking.ends_at),
        lambda s: bookings.booking_no_show(s, booking_id=booking.id, absent="tutor", at=booking.ends_at),
    ):
        with pytest.raises(Conflict):
            async with transaction() as session:
                await verb(session)
        assert (await load_booking(booking.id)).status == BookingStatus.disputed
    # The attendance pass only looks at confirmed lessons.
    from lessons.services import lessons_due, lessons_to_reconcile

    async with session_factory()() as session:
        assert booking.id not in await lessons_due(session, now=booking.ends_at + timedelta(hours=2))
        assert booking.id not in await lessons_to_reconcile(session, now=during)
    # Disputing twice is refused with a clear message.
    with pytest.raises(Conflict, match="already disputed"):
        await _dispute(learner, booking, during)
    # The lesson pages show the state.
    await log_in(client, learner.email, PASSWORD)
    assert "Disputed" in (await client.get(f"/lessons/{booking.id}")).text
    assert "Disputed" in (await client.get("/lessons")).text
    # The admin resolves: resolved, and the tutor is paid (release).
    admin = await make_user(email="admin@example.com", role="admin")
    async with transaction() as session:
        await dispute_resolve(
            session, admin=admin, dispute_id=dispute.id, outcome="release", amount=None, reason="Lesson was held"
        )
    drain_jobs()
    assert (await load_booking(booking.id)).status == BookingStatus.resolved
    assert (await load_payment(booking.id)).transfer_status == TransferStatus.paid
    assert "Resolved" in (await client.get(f"/lessons/{booking.id}")).text
    with pytest.raises(Conflict):
        async with transaction() as session:
            await bookings.booking_complete(session, booking_id=booking.id, at=booking.ends_at)
    assert await ledger_sums() == {"EUR": 0}


async def test_dispute_transitions_are_checked(drain_jobs):
    _tutor, _learner, booking = await _paid(drain_jobs)
    with pytest.raises(Conflict, match="Only a disputed lesson"):
        async with transaction() as session:
            await bookings.booking_resolve(session, booking_id=booking.id)
    async with transaction() as session:
        await bookings.booking_complete(session, booking_id=booking.id, at=booking.ends_at)
    async with transaction() as session:
        assert (await bookings.booking_dispute(session, booking_id=booking.id)).status == BookingStatus.disputed
    async with transaction() as session:  # idempotent
        assert (await bookings.booking_dispute(session, booking_id=booking.id)).status == BookingStatus.disputed
    async with transaction() as session:
        assert (await bookings.booking_resolve(session, booking_id=booking.id)).status == BookingStatus.resolved
    with pytest.raises(Conflict):
        async with transaction() as session:
            await bookings.booking_dispute(session, booking_id=booking.id)
    tutor = await load_user("clara@example.com")
    held = await held_booking(tutor, await student(email="other@example.com"), days=6)
    with pytest.raises(Conflict, match="cannot be disputed"):
        async with transaction() as session:
            await bookings.booking_dispute(session, booking_id=held.id)
