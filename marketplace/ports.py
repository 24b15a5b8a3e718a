"""Ports: what the marketplace core needs to know from the domains, without importing them.

The core (reviews, messaging) asks questions about lessons; the scheduling domain answers them by
registering an implementation when it is imported (``marketplace.db.import_all_models`` imports
every domain). Tests and later domains go through the same functions.

The core also tells the search domain when a tutor profile's public face may have changed
(``search_indexer().schedule(session, profile_id)``); ``search.sync`` registers itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class LessonFact:
    booking_id: uuid.UUID
    tutor_id: uuid.UUID
    student_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    status: str


@dataclass(frozen=True)
class TutorReliability:
    lessons: int  # lessons that were confirmed (or cancelled by the tutor)
    completed: int
    cancelled_by_tutor: int
    no_shows: int  # lessons the tutor did not attend
    percent: int | None  # share of lessons the tutor kept; None without lessons


class LessonFacts(Protocol):
    async def completed_lesson(
        self, session: AsyncSession, *, booking_id: uuid.UUID, student_id: uuid.UUID
    ) -> LessonFact | None:
        """The booking if it is a completed lesson of this student, else None."""

    async def has_paid_lesson(self, session: AsyncSession, *, student_id: uuid.UUID, tutor_id: uuid.UUID) -> bool:
        """Whether this pair has at least one paid (confirmed or later) lesson."""

    async def completed_lessons_count(self, session: AsyncSession, *, tutor_id: uuid.UUID) -> int: ...

    async def completed_lessons_for_student(
        self, session: AsyncSession, *, student_id: uuid.UUID, limit: int
    ) -> list[LessonFact]:
        """The student's completed lessons, newest first."""

    async def tutor_reliability(self, session: AsyncSession, *, tutor_id: uuid.UUID) -> TutorReliability:
        """Lessons confirmed, completed, cancelled by the tutor and missed by the tutor."""


_lesson_facts: LessonFacts | None = None


def register_lesson_facts(impl: LessonFacts) -> None:
    global _lesson_facts
    _lesson_facts = impl


def lesson_facts() -> LessonFacts:
    if _lesson_facts is None:
        raise RuntimeError("no lesson facts registered: import marketplace.db.import_all_models() first")
    return _lesson_facts


# ---- search indexing -----------------------------------------------------------------------


class SearchIndexer(Protocol):
    def schedule(self, session: AsyncSession, profile_id: uuid.UUID) -> None:
        """Re-index (or remove) this profile's search document once the session's transaction commits."""


class _NoSearchIndexer:
    """Used only while no search domain is registered (a script that skipped ``import_all_models``):
    nothing is scheduled, and the periodic reconcile job repairs the index later."""

    def schedule(self, session: AsyncSession, profile_id: uuid.UUID) -> None:
        return None


_search_indexer: SearchIndexer | None = None


def register_search_indexer(impl: SearchIndexer) -> None:
    global _search_indexer
    _search_indexer = impl


def search_indexer() -> SearchIndexer:
    return _search_indexer if _search_indexer is not None else _NoSearchIndexer()


# ---- payments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LessonPayment:
    """What a lesson page links to about the lesson's payment (for one viewer)."""

    receipt_url: str | None  # the student's receipt, once paid
    dispute_url: str | None  # when the student may open a dispute now


class Payments(Protocol):
    async def tutor_takes_paid_bookings(self, session: AsyncSession, *, tutor_id: uuid.UUID) -> bool:
        """Whether the tutor's payouts are enabled (no paid booking can be made before)."""

    async def lesson_payment(
        self, session: AsyncSession, *, booking_id: uuid.UUID, viewer_id: uuid.UUID, now: datetime
    ) -> LessonPayment | None:
        """Receipt and dispute links of this booking for the viewer; None without a payment."""


_payments: Payments | None = None


def register_payments(impl: Payments) -> None:
    global _payments
    _payments = impl


def payments() -> Payments:
    if _payments is None:
        raise RuntimeError("no payments registered: import marketplace.db.import_all_models() first")
    return _payments
