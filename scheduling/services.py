"""Booking verbs. For now: recording a completed lesson (the interface the reviews and messaging
tests use until holds, payment and completion arrive with the scheduling and payments issues),
and the answers the marketplace core asks through ``marketplace.ports``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.errors import ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.ports import LessonFact, TutorReliability, register_lesson_facts
from scheduling.models import PAID_STATUSES, Booking, BookingStatus


async def booking_record_completed(
    session: AsyncSession,
    *,
    tutor_id: uuid.UUID,
    student_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    price_amount: int,
    currency: str,
) -> Booking:
    """A lesson that took place and was paid (demo data, and tests until booking flows exist)."""
    if tutor_id == student_id:
        raise ValidationFailed(_("You cannot book a lesson with yourself."))
    if ends_at <= starts_at:
        raise ValidationFailed(_("A lesson must end after it starts."))
    booking = Booking(
        tutor_id=tutor_id,
        student_id=student_id,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_from=starts_at,
        blocked_until=ends_at,
        status=BookingStatus.completed,
        price_amount=price_amount,
        currency=currency,
        paid_at=starts_at,
        completed_at=ends_at,
    )
    session.add(booking)
    await session.flush()
    return booking


def _fact(booking: Booking) -> LessonFact:
    return LessonFact(
        booking_id=booking.id,
        tutor_id=booking.tutor_id,
        student_id=booking.student_id,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        status=booking.status.value,
    )


class _LessonFacts:
    async def completed_lesson(
        self, session: AsyncSession, *, booking_id: uuid.UUID, student_id: uuid.UUID
    ) -> LessonFact | None:
        booking = await session.get(Booking, booking_id)
        if booking is None or booking.student_id != student_id or booking.status != BookingStatus.completed:
            return None
        return LessonFact(
            booking_id=booking.id,
            tutor_id=booking.tutor_id,
            student_id=booking.student_id,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            status=booking.status.value,
        )

    async def has_paid_lesson(self, session: AsyncSession, *, student_id: uuid.UUID, tutor_id: uuid.UUID) -> bool:
        row = await session.execute(
            select(Booking.id)
            .where(Booking.student_id == student_id, Booking.tutor_id == tutor_id, Booking.status.in_(PAID_STATUSES))
            .limit(1)
        )
        return row.first() is not None

    async def completed_lessons_count(self, session: AsyncSession, *, tutor_id: uuid.UUID) -> int:
        return (
            await session.execute(
                select(func.count()).where(Booking.tutor_id == tutor_id, Booking.status == BookingStatus.completed)
            )
        ).scalar_one()

    async def completed_lessons_for_student(
        self, session: AsyncSession, *, student_id: uuid.UUID, limit: int
    ) -> list[LessonFact]:
        rows = await session.execute(
            select(Booking)
            .where(Booking.student_id == student_id, Booking.status == BookingStatus.completed)
            .order_by(Booking.starts_at.desc())
            .limit(limit)
        )
        return [_fact(b) for b in rows.scalars()]

    async def tutor_reliability(self, session: AsyncSession, *, tutor_id: uuid.UUID) -> TutorReliability:
        from scheduling.bookings import tutor_reliability

        r = await tutor_reliability(session, tutor_user_id=tutor_id)
        return TutorReliability(r.lessons, r.completed, r.cancelled_by_tutor, r.no_shows, r.percent)


register_lesson_facts(_LessonFacts())
