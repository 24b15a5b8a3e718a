"""Shared set-up for the calendar, invitation and reminder tests: people and bookings written
directly (the booking service is tested on its own)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from marketplace.db import transaction
from scheduling.models import Booking, BookingKind, BookingStatus


async def add_booking(
    *,
    tutor_id: uuid.UUID,
    student_id: uuid.UUID,
    starts_at: datetime,
    minutes: int = 60,
    status: BookingStatus = BookingStatus.confirmed,
    kind: BookingKind = BookingKind.lesson,
    sequence: int = 0,
    confirmed_at: datetime | None = None,
    created_at: datetime | None = None,
) -> Booking:
    ends_at = starts_at + timedelta(minutes=minutes)
    async with transaction() as session:
        booking = Booking(
            tutor_id=tutor_id,
            student_id=student_id,
            starts_at=starts_at,
            ends_at=ends_at,
            blocked_from=starts_at,
            blocked_until=ends_at,
            status=status,
            kind=kind,
            price_amount=4500,
            currency="EUR",
            sequence=sequence,
            confirmed_at=confirmed_at,
        )
        if created_at is not None:
            booking.created_at = created_at
        session.add(booking)
    return booking


async def give_instrument(user_id: uuid.UUID, *slugs: str) -> None:
    """A live tutor profile teaching ``slugs`` (the taxonomy is seeded by the migrations)."""
    from marketplace.tutors.models import ProfileStatus, TutorProfile

    doc = {"instruments": [{"slug": slug, "levels": ["beginner"]} for slug in slugs]}
    async with transaction() as session:
        session.add(
            TutorProfile(
                user_id=user_id, slug=f"t-{user_id.hex[:12]}", status=ProfileStatus.approved, draft=doc, live=doc
            )
        )
