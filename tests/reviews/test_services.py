"""Review rules through the services: who may review, one per booking, the edit window, one
tutor reply, admin hiding with an audit record, and aggregates that always match the reviews."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import User
from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction, utcnow
from marketplace.errors import Conflict, Forbidden, NotFound, ValidationFailed
from marketplace.reviews import services
from marketplace.reviews.models import Review
from scheduling.models import Booking, BookingStatus
from tests.helpers import count_statements
from tests.reviews.support import aggregates, all_reviews, completed_lesson, quick_user, with_profile

GOOD_TEXT = "A patient teacher; my scales finally make sense."


async def create(student, booking_id, rating=5, text=GOOD_TEXT):
    async with transaction() as session:
        me = await session.get(User, student.id)
        return await services.review_create(session, student=me, booking_id=booking_id, rating=rating, text=text)


async def edit(student, review_id, rating, text=GOOD_TEXT):
    async with transaction() as session:
        me = await session.get(User, student.id)
        return await services.review_update(session, student=me, review_id=review_id, rating=rating, text=text)


async def reply(tutor, review_id, text="Thank you, see you next week!"):
    async with transaction() as session:
        me = await session.get(User, tutor.id)
        return await services.review_reply(session, tutor=me, review_id=review_id, text=text)


async def hide(admin, review_id, reason="Personal data in the text"):
    async with transaction() as session:
        me = await session.get(User, admin.id)
        return await services.review_hide(session, admin=me, review_id=review_id, reason=reason)


async def unhide(admin, review_id):
    async with transaction() as session:
        me = await session.get(User, admin.id)
        return await services.review_unhide(session, admin=me, review_id=review_id, reason="Edited by support")


async def recount(tutor_id):
    async with transaction() as session:
        return await services.reviews_recount(session, tutor_id=tutor_id)


@pytest.fixture
async def lesson():
    tutor = await quick_user(role="tutor", name="Clara Klavier")
    await with_profile(tutor)
    student = await quick_user(name="Ana Student")
    booking = await completed_lesson(tutor, student)
    return tutor, student, booking


async def test_a_student_reviews_a_completed_lesson_and_the_tutor_aggregate_follows(lesson):
    tutor, student, booking = lesson
    review = await create(student, booking.id, rating=4, text="  A patient   teacher;\n\n\n\nmy scales  work.  ")
    assert review.tutor_id == tutor.id and review.student_id == student.id and review.booking_id == booking.id
    assert review.text == "A patient teacher;\n\nmy scales work."
    assert review.editable_until == review.created_at + timedelta(days=7)
    assert await aggregates(tutor.id) == (1, 4)


async def test_without_a_completed_lesson_the_review_is_refused_and_nothing_is_saved(lesson):
    tutor, student, booking = lesson
    async with transaction() as session:
        await session.execute(update(Booking).where(Booking.id == booking.id).values(status=BookingStatus.confirmed))
    with pytest.raises(Forbidden):
        await create(student, booking.id)
    with pytest.raises(Forbidden):
        await create(student, uuid.uuid4())
    assert await all_reviews() == []
    assert await aggregates(tutor.id) == (0, 0)


async def test_a_student_cannot_review_someone_elses_lesson(lesson):
    tutor, _student, booking = lesson
    intruder = await quick_user(name="Eve Other")
    with pytest.raises(Forbidden):
        await create(intruder, booking.id)
    with pytest.raises(Forbidden):
        await create(tutor, booking.id)
    assert await all_reviews() == []


async def test_a_booking_gets_one_review_even_under_concurrent_requests(lesson):
    tutor, student, booking = lesson
    await create(student, booking.id, rating=5)
    with pytest.raises(Conflict):
        await create(student, booking.id, rating=1)
    second = await completed_lesson(tutor, student)
    results = await asyncio.gather(*(create(student, second.id, rating=3) for _ in range(4)), return_exceptions=True)
    assert sum(isinstance(r, Review) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Review))
    assert await aggregates(tutor.id) == (2, 8)


async def test_the_unique_constraint_is_the_final_guard(lesson, monkeypatch):
    tutor, student, booking = lesson
    await create(student, booking.id, rating=2)

    real_execute = type(session_factory()()).execute

    async def blind_execute(self, statement, *args, **kwargs):
        # Hide the existing review from the friendly pre-check, as a concurrent request would see it.
        if "reviews.booking_id" in str(statement) and "count" not in str(statement):
            return await real_execute(self, select(Review.id).where(Review.id.is_(None)))
        return await real_execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(type(session_factory()()), "execute", blind_execute)
    with pytest.raises(Conflict) as caught:
        await create(student, booking.id, rating=5)
    monkeypatch.undo()
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert len(await all_reviews()) == 1
    assert await aggregates(tutor.id) == (1, 2)


@pytest.mark.parametrize(
    ("rating", "text", "field"),
    [
        (0, GOOD_TEXT, "rating"),
        (6, GOOD_TEXT, "rating"),
        ("abc", GOOD_TEXT, "rating"),
        ("", GOOD_TEXT, "rating"),
        (True, GOOD_TEXT, "rating"),
        ("٣", GOOD_TEXT, "rating"),
        (5, "Too short", "text"),
        (5, "   short      \n\n   ", "text"),
        (5, "x" * 2001, "text"),
        (5, "Great lesson! <script>alert(1)</script>", "text"),
        (5, "Great lesson &lt;3 really good", "text"),
    ],
)
async def test_bad_ratings_and_texts_are_refused_with_a_message(lesson, rating, text, field):
    tutor, student, booking = lesson
    with pytest.raises(ValidationFailed) as caught:
        await create(student, booking.id, rating=rating, text=text)
    assert caught.value.status_code == 422 and set(caught.value.errors) == {field}
    assert await all_reviews() == []
    assert await aggregates(tutor.id) == (0, 0)


async def test_plain_text_with_angle_brackets_that_are_not_markup_is_fine(lesson):
    _tutor, student, booking = lesson
    review = await create(student, booking.id, rating="5", text="I <3 music, and 2 < 3 too " + "x" * 1974)
    assert review.rating == 5 and len(review.text) == 2000


async def test_the_author_edits_within_seven_days_and_not_after(lesson):
    tutor, student, booking = lesson
    review = await create(student, booking.id, rating=5)
    edited = await edit(student, review.id, rating=2, text="On second thought, rather rushed.")
    assert edited.rating == 2 and edited.text == "On second thought, rather rushed."
    assert await aggregates(tutor.id) == (1, 2)
    with pytest.raises(Forbidden):
        await edit(await quick_user(), review.id, rating=1)
    with pytest.raises(ValidationFailed):
        await edit(student, review.id, rating=9)
    async with transaction() as session:
        await session.execute(
            update(Review).where(Review.id == review.id).values(editable_until=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(Forbidden):
        await edit(student, review.id, rating=4)
    with pytest.raises(NotFound):
        await edit(student, uuid.uuid4(), rating=4)
    assert await aggregates(tutor.id) == (1, 2)


async def test_the_tutor_replies_once_and_nobody_else_can(lesson):
    tutor, student, booking = lesson
    review = await create(student, booking.id)
    with pytest.raises(Forbidden):
        await reply(await quick_user(role="tutor"), review.id)
    with pytest.raises(Forbidden):
        await reply(student, review.id)
    with pytest.raises(ValidationFailed):
        await reply(tutor, review.id, text="   ")
    with pytest.raises(ValidationFailed):
        await reply(tutor, review.id, text="<b>thanks</b>")
    with pytest.raises(ValidationFailed):
        await reply(tutor, review.id, text="x" * 2001)
    answered = await reply(tutor, review.id, text="Thank you,   Ana!")
    assert answered.reply_text == "Thank you, Ana!" and answered.replied_at is not None
    with pytest.raises(Conflict):
        await reply(tutor, review.id, text="Changed my mind")
    assert (await all_reviews())[0].reply_text == "Thank you, Ana!"


async def test_admins_hide_with_a_reason_audited_and_hidden_reviews_leave_the_aggregates(lesson):
    tutor, student, booking = lesson
    admin = await quick_user(role="admin")
    review = await create(student, booking.id, rating=1)
    other = await quick_user()
    await create(other, (await completed_lesson(tutor, other)).id, rating=5)
    assert await aggregates(tutor.id) == (2, 6)
    with pytest.raises(Forbidden):
        await hide(tutor, review.id)
    with pytest.raises(ValidationFailed):
        await hide(admin, review.id, reason="   ")
    hidden = await hide(admin, review.id, reason="Insults the tutor")
    assert hidden.hidden_at is not None and hidden.hidden_by == admin.id and hidden.hidden_reason == "Insults the tutor"
    assert await aggregates(tutor.id) == (1, 5)
    with pytest.raises(Conflict):
        await hide(admin, review.id)
    with pytest.raises(Forbidden):
        await edit(student, review.id, rating=5)
    async with session_factory()() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "review.hide"))).scalar_one()
        page = await services.reviews_for_tutor(session, tutor_id=tutor.id, page=1)
    assert entry.actor_id == admin.id and entry.target_type == "review" and entry.target_id == str(review.id)
    assert entry.reason == "Insults the tutor" and entry.before["hidden"] is False and entry.after["hidden"] is True
    assert page.total == 1 and [row.review.rating for row in page.items] == [5]

    await unhide(admin, review.id)
    assert await aggregates(tutor.id) == (2, 6)
    with pytest.raises(Conflict):
        await unhide(admin, review.id)
    async with session_factory()() as session:
        actions = (await session.execute(select(AuditEntry.action).order_by(AuditEntry.created_at))).scalars().all()
    assert actions == ["review.hide", "review.unhide"]


async def test_a_tutor_without_a_profile_gets_reviews_and_the_recount_fills_the_profile_later():
    tutor = await quick_user(role="tutor")
    student = await quick_user()
    review = await create(student, (await completed_lesson(tutor, student)).id, rating=3)
    await edit(student, review.id, rating=4)
    await with_profile(tutor)
    assert await aggregates(tutor.id) == (0, 0)
    assert await recount(tutor.id) == (1, 4)
    assert await aggregates(tutor.id) == (1, 4)
    assert await recount(uuid.uuid4()) == (0, 0)


async def test_concurrent_reviews_of_one_tutor_lose_no_aggregate_update(lesson):
    tutor, _student, _booking = lesson
    students = [await quick_user() for _ in range(6)]
    bookings = [await completed_lesson(tutor, s) for s in students]
    ratings = [1, 2, 3, 4, 5, 5]
    await asyncio.gather(*(create(s, b.id, rating=r) for s, b, r in zip(students, bookings, ratings, strict=True)))
    assert await aggregates(tutor.id) == (6, 20)
    assert await recount(tutor.id) == (6, 20)


async def test_reviews_for_tutor_lists_visible_reviews_newest_first_with_names(lesson):
    tutor, student, booking = lesson
    admin = await quick_user(role="admin")
    first = await create(student, booking.id, rating=5)
    others = []
    for n in range(3):
        other = await quick_user(name=f"Student {n}")
        others.append(await create(other, (await completed_lesson(tutor, other)).id, rating=n + 1))
    await hide(admin, others[0].id)
    elsewhere = await quick_user(role="tutor")
    await create(student, (await completed_lesson(elsewhere, student)).id)
    async with session_factory()() as session:
        page1 = await services.reviews_for_tutor(session, tutor_id=tutor.id, page=1, per_page=2)
        page2 = await services.reviews_for_tutor(session, tutor_id=tutor.id, page=2, per_page=2)
    assert page1.total == page2.total == 3 and page1.has_next and not page2.has_next
    rows = page1.items + page2.items
    assert [r.review.id for r in rows] == [others[2].id, others[1].id, first.id]
    assert [r.student_name for r in rows] == ["Student 2", "Student 1", "Ana Student"]


async def test_reviews_for_tutor_needs_the_same_number_of_statements_for_2_and_20_reviews(lesson):
    tutor, _student, _booking = lesson

    async def add_reviews(n):
        for _ in range(n):
            student = await quick_user()
            await create(student, (await completed_lesson(tutor, student)).id, rating=4)

    async def listed(per_page):
        async with session_factory()() as session:
            await session.connection()  # the connection's own set-up is not the selector's work
            with count_statements() as statements:
                result = await services.reviews_for_tutor(session, tutor_id=tutor.id, page=1, per_page=per_page)
                names = [row.student_name for row in result.items]
                texts = [row.review.text for row in result.items]
        return result, names, texts, statements

    await add_reviews(2)
    few, names, _texts, few_statements = await listed(50)
    assert few.total == 2 and len(names) == 2
    await add_reviews(18)
    many, names, _texts, many_statements = await listed(50)
    assert many.total == 20 and len(names) == 20
    assert len(many_statements) == len(few_statements) == 2, (few_statements, many_statements)
