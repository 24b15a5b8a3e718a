"""Shared set-up for the reviews tests: people, tutor profiles and completed lessons."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from marketplace.accounts.models import Role, User
from marketplace.db import session_factory, transaction, utcnow
from marketplace.reviews.models import Review
from marketplace.tutors import services as tutor_services
from marketplace.tutors.models import TutorProfile
from scheduling.services import booking_record_completed

PASSWORD = "correct horse battery"


async def quick_user(*, role: str = "student", name: str | None = None) -> User:
    """A user without the cost of hashing a password (service tests that never log in)."""
    tag = uuid.uuid4().hex[:12]
    async with transaction() as session:
        user = User(
            email=f"{role}-{tag}@example.com",
            password_hash="!",
            display_name=name or f"{role.title()} {tag}",
            role=Role(role),
            email_verified_at=utcnow(),
        )
        session.add(user)
    return user


async def with_profile(tutor: User) -> TutorProfile:
    async with transaction() as session:
        return await tutor_services.profile_start(session, user=await session.get(User, tutor.id))


async def completed_lesson(tutor: User, student: User, *, days_ago: int = 1):
    """A completed, paid lesson, made through the booking service's interface."""
    starts = utcnow() - timedelta(days=days_ago, hours=1)
    async with transaction() as session:
        return await booking_record_completed(
            session,
            tutor_id=tutor.id,
            student_id=student.id,
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            price_amount=4500,
            currency="EUR",
        )


async def aggregates(tutor_id: uuid.UUID) -> tuple[int, int]:
    async with session_factory()() as session:
        row = (
            await session.execute(
                select(TutorProfile.rating_count, TutorProfile.rating_sum).where(TutorProfile.user_id == tutor_id)
            )
        ).one()
    return row.rating_count, row.rating_sum


async def all_reviews() -> list[Review]:
    async with session_factory()() as session:
        return list((await session.execute(select(Review))).scalars())
