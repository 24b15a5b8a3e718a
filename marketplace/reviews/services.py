"""Review verbs and selectors.

Rules: only the student of a completed lesson reviews it (through ``marketplace.ports``, never the
scheduling models); one review per booking (the unique constraint on ``booking_id`` is the final
guard); the author edits it for ``EDIT_WINDOW``; the tutor of the review replies once; admins hide
(never delete) with a reason and may unhide, both audited.

Aggregates: ``TutorProfile.rating_count`` / ``rating_sum`` cover the visible (not hidden) reviews of
the profile's user. Every change applies a delta with an atomic ``UPDATE ... SET x = x + :delta`` in
the caller's transaction, so concurrent reviews of the same tutor cannot lose updates; the review
row itself is locked (``FOR UPDATE``; SQLite serializes writers) before it is read and changed.
``reviews_recount`` rebuilds a tutor's aggregates from scratch (repair, or once a profile exists).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from marketplace.accounts.models import Role, User
from marketplace.audit import MAX_REASON_LENGTH, audit_reason, audit_record
from marketplace.db import utcnow
from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.ports import LessonFact, lesson_facts, search_indexer
from marketplace.reviews.models import Review
from marketplace.tutors.models import TutorProfile
from marketplace.tutors.text import TextError, contains_markup, plain_text

EDIT_WINDOW = timedelta(days=7)
MIN_RATING = 1
MAX_RATING = 5
MIN_TEXT_LENGTH = 10
MAX_TEXT_LENGTH = 2000
MAX_REPLY_LENGTH = 2000


# ---- validation ----------------------------------------------------------------------------


def _clean_rating(value: Any, errors: dict[str, str]) -> int:
    rating: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        rating = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        rating = int(value.strip())
    if rating is None or not MIN_RATING <= rating <= MAX_RATING:
        errors["rating"] = _("Choose a rating from 1 to 5 stars.")
        return 0
    return rating


def _clean_text(
    value: Any, errors: dict[str, str], *, field: str, min_length: int, max_length: int, empty_message: str
) -> str:
    try:
        text = plain_text(value if isinstance(value, str) else "", max_length=max_length, multiline=True)
    except TextError:
        errors[field] = _("Please keep it to at most %(max)d characters.", max=max_length)
        return ""
    if len(text) < min_length:
        errors[field] = empty_message
    elif contains_markup(text):
        errors[field] = _("Please write plain text: HTML tags and codes are not allowed.")
    return text


def _clean_review(rating: Any, text: Any) -> tuple[int, str]:
    errors: dict[str, str] = {}
    clean_rating = _clean_rating(rating, errors)
    clean_text = _clean_text(
        text,
        errors,
        field="text",
        min_length=MIN_TEXT_LENGTH,
        max_length=MAX_TEXT_LENGTH,
        empty_message=_("Please write at least %(min)d characters about the lesson.", min=MIN_TEXT_LENGTH),
    )
    if errors:
        raise ValidationFailed(_("Please correct the highlighted fields."), errors=errors)
    return clean_rating, clean_text


# ---- aggregates ----------------------------------------------------------------------------


async def _reindex_tutor(session: AsyncSession, *, tutor_id: uuid.UUID) -> None:
    """The tutor's search document shows the rating: re-index the profile (if any) after commit."""
    profile_id = (
        await session.execute(select(TutorProfile.id).where(TutorProfile.user_id == tutor_id))
    ).scalar_one_or_none()
    if profile_id is not None:
        search_indexer().schedule(session, profile_id)


async def _aggregate_add(session: AsyncSession, *, tutor_id: uuid.UUID, count: int, rating_sum: int) -> None:
    """Atomically add to the tutor's aggregates; a tutor without a profile row is skipped."""
    if not count and not rating_sum:
        return
    await _reindex_tutor(session, tutor_id=tutor_id)
    await session.execute(
        update(TutorProfile)
        .where(TutorProfile.user_id == tutor_id)
        .values(
            rating_count=TutorProfile.rating_count + count,
            rating_sum=TutorProfile.rating_sum + rating_sum,
        )
        .execution_options(synchronize_session="fetch")
    )


async def reviews_recount(session: AsyncSession, *, tutor_id: uuid.UUID) -> tuple[int, int]:
    """Recompute ``(rating_count, rating_sum)`` of the tutor's visible reviews and store them on
    the tutor's profile (if it exists). Returns the recomputed pair."""
    count, total = (
        await session.execute(
            select(func.count(Review.id), func.coalesce(func.sum(Review.rating), 0)).where(
                Review.tutor_id == tutor_id, Review.hidden_at.is_(None)
            )
        )
    ).one()
    await session.execute(
        update(TutorProfile)
        .where(TutorProfile.user_id == tutor_id)
        .values(rating_count=count, rating_sum=total)
        .execution_options(synchronize_session="fetch")
    )
    await _reindex_tutor(session, tutor_id=tutor_id)
    return int(count), int(total)


# ---- verbs ---------------------------------------------------------------------------------


async def _completed_lesson(session: AsyncSession, *, student: User, booking_id: uuid.UUID) -> LessonFact:
    fact = await lesson_facts().completed_lesson(session, booking_id=booking_id, student_id=student.id)
    if fact is None:
        raise Forbidden(_("You can only review a lesson that you took and that has been completed."))
    return fact


async def _locked_review(session: AsyncSession, review_id: uuid.UUID) -> Review:
    review = await session.get(Review, review_id, with_for_update=True, populate_existing=True)
    if review is None:
        raise NotFound(_("We could not find that review."))
    return review


async def review_create(
    session: AsyncSession, *, student: User, booking_id: uuid.UUID, rating: int | str, text: str
) -> Review:
    """The student's review of a completed lesson (one per booking)."""
    fact = await _completed_lesson(session, student=student, booking_id=booking_id)
    existing = await session.execute(select(Review.id).where(Review.booking_id == booking_id))
    if existing.first() is not None:
        raise Conflict(_("You have already reviewed this lesson."))
    clean_rating, clean_text = _clean_review(rating, text)
    now = utcnow()
    review = Review(
        booking_id=fact.booking_id,
        tutor_id=fact.tutor_id,
        student_id=fact.student_id,
        rating=clean_rating,
        text=clean_text,
        created_at=now,
        updated_at=now,
        editable_until=now + EDIT_WINDOW,
    )
    try:
        async with session.begin_nested():
            session.add(review)
    except IntegrityError as exc:  # a concurrent request reviewed the same booking first
        raise Conflict(_("You have already reviewed this lesson.")) from exc
    await _aggregate_add(session, tutor_id=review.tutor_id, count=1, rating_sum=review.rating)
    return review


async def review_update(
    session: AsyncSession, *, student: User, review_id: uuid.UUID, rating: int | str, text: str
) -> Review:
    """The author edits the review until ``editable_until``; a visible review's new rating moves
    the aggregates by the difference."""
    review = await _locked_review(session, review_id)
    if review.student_id != student.id:
        raise Forbidden(_("Only the author can edit this review."))
    if review.hidden_at is not None:
        raise Forbidden(_("A moderator hid this review; it can no longer be edited."))
    if utcnow() >= review.editable_until:
        raise Forbidden(_("Reviews can be edited for 7 days; the time for this one has passed."))
    clean_rating, clean_text = _clean_review(rating, text)
    delta = clean_rating - review.rating
    review.rating = clean_rating
    review.text = clean_text
    await session.flush()
    await _aggregate_add(session, tutor_id=review.tutor_id, count=0, rating_sum=delta)
    return review


async def review_reply(session: AsyncSession, *, tutor: User, review_id: uuid.UUID, text: str) -> Review:
    """The reviewed tutor answers once, in public."""
    review = await _locked_review(session, review_id)
    if review.tutor_id != tutor.id:
        raise Forbidden(_("Only the tutor who was reviewed can reply."))
    if review.replied_at is not None:
        raise Conflict(_("You have already replied to this review."))
    errors: dict[str, str] = {}
    reply = _clean_text(
        text,
        errors,
        field="reply",
        min_length=1,
        max_length=MAX_REPLY_LENGTH,
        empty_message=_("Please write your reply."),
    )
    if errors:
        raise ValidationFailed(errors["reply"], errors=errors)
    review.reply_text = reply
    review.replied_at = utcnow()
    await session.flush()
    return review


def _moderation_state(review: Review) -> dict[str, Any]:
    return {"hidden": review.hidden_at is not None, "rating": review.rating, "reason": review.hidden_reason}


def _require_admin(admin: User) -> None:
    if admin.role != Role.admin:
        raise Forbidden(_("Only admins can do this."))


async def review_hide(session: AsyncSession, *, admin: User, review_id: uuid.UUID, reason: str) -> Review:
    """Hide a review from the public with a reason; it leaves the tutor's aggregates."""
    _require_admin(admin)
    reason = audit_reason(reason)
    review = await _locked_review(session, review_id)
    if review.hidden_at is not None:
        raise Conflict(_("This review is already hidden."))
    before = _moderation_state(review)
    review.hidden_at = utcnow()
    review.hidden_reason = reason
    review.hidden_by = admin.id
    await session.flush()
    await _aggregate_add(session, tutor_id=review.tutor_id, count=-1, rating_sum=-review.rating)
    await audit_record(
        session,
        actor_id=admin.id,
        action="review.hide",
        target_type="review",
        target_id=review.id,
        before=before,
        after=_moderation_state(review),
        reason=reason,
    )
    return review


async def review_unhide(session: AsyncSession, *, admin: User, review_id: uuid.UUID, reason: str = "") -> Review:
    """Show a hidden review again; it rejoins the tutor's aggregates."""
    _require_admin(admin)
    note = " ".join((reason or "").split())[:MAX_REASON_LENGTH] or None
    review = await _locked_review(session, review_id)
    if review.hidden_at is None:
        raise Conflict(_("This review is not hidden."))
    before = _moderation_state(review)
    review.hidden_at = None
    review.hidden_reason = None
    review.hidden_by = None
    await session.flush()
    await _aggregate_add(session, tutor_id=review.tutor_id, count=1, rating_sum=review.rating)
    await audit_record(
        session,
        actor_id=admin.id,
        action="review.unhide",
        target_type="review",
        target_id=review.id,
        before=before,
        after=_moderation_state(review),
        reason=note,
    )
    return review


# ---- selectors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRow:
    review: Review
    student_name: str
    tutor_name: str | None = None


@dataclass(frozen=True)
class ReviewPage:
    items: list[ReviewRow]
    total: int
    page: int
    per_page: int

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total


def _page_number(page: int) -> int:
    return max(1, min(int(page), 100_000))


async def reviews_for_tutor(
    session: AsyncSession, *, tutor_id: uuid.UUID, page: int = 1, per_page: int = 10
) -> ReviewPage:
    """The tutor's visible reviews, newest first, with the student's display name: two statements."""
    page = _page_number(page)
    where = (Review.tutor_id == tutor_id, Review.hidden_at.is_(None))
    total = (await session.execute(select(func.count(Review.id)).where(*where))).scalar_one()
    rows = await session.execute(
        select(Review, User.display_name)
        .join(User, User.id == Review.student_id)
        .where(*where)
        .order_by(Review.created_at.desc(), Review.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    items = [ReviewRow(review=review, student_name=name) for review, name in rows]
    return ReviewPage(items=items, total=total, page=page, per_page=per_page)


async def reviews_recent(
    session: AsyncSession, *, page: int = 1, per_page: int = 25, hidden: bool | None = None
) -> ReviewPage:
    """All reviews for admins, newest first, with student and tutor names (two statements)."""
    page = _page_number(page)
    where = [] if hidden is None else [Review.hidden_at.is_not(None) if hidden else Review.hidden_at.is_(None)]
    student, tutor = aliased(User), aliased(User)
    total = (await session.execute(select(func.count(Review.id)).where(*where))).scalar_one()
    rows = await session.execute(
        select(Review, student.display_name, tutor.display_name)
        .join(student, student.id == Review.student_id)
        .join(tutor, tutor.id == Review.tutor_id)
        .where(*where)
        .order_by(Review.created_at.desc(), Review.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    items = [ReviewRow(review=r, student_name=s, tutor_name=t) for r, s, t in rows]
    return ReviewPage(items=items, total=total, page=page, per_page=per_page)


@dataclass(frozen=True)
class ReviewForm:
    """What the student's review page needs: the lesson, the tutor's name, the review if any."""

    lesson: LessonFact
    tutor_name: str
    review: Review | None

    @property
    def editable(self) -> bool:
        return self.review is None or (self.review.hidden_at is None and utcnow() < self.review.editable_until)


async def review_form_facts(session: AsyncSession, *, student: User, booking_id: uuid.UUID) -> ReviewForm:
    """The lesson the student may review (else Forbidden) with the tutor's name and any review."""
    fact = await _completed_lesson(session, student=student, booking_id=booking_id)
    tutor_name = (await session.execute(select(User.display_name).where(User.id == fact.tutor_id))).scalar_one()
    review = (await session.execute(select(Review).where(Review.booking_id == booking_id))).scalar_one_or_none()
    return ReviewForm(lesson=fact, tutor_name=tutor_name, review=review)
