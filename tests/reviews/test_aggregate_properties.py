"""Property: after any sequence of create / update / hide / unhide / recount, the tutor profile's
aggregates equal the count and sum of the visible reviews, computed independently."""

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.accounts.models import User
from marketplace.db import transaction
from marketplace.errors import AppError
from marketplace.reviews import services
from tests.reviews.support import aggregates, completed_lesson, quick_user, with_profile

STUDENTS = 3
MISSING = uuid.uuid4()  # a review that does not exist (an action before the create)
TEXT = "Lovely lesson, clear explanations."

operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(0, STUDENTS - 1), st.integers(1, 5)),
        st.tuples(st.just("update"), st.integers(0, STUDENTS - 1), st.integers(1, 5)),
        st.tuples(st.just("hide"), st.integers(0, STUDENTS - 1), st.just(0)),
        st.tuples(st.just("unhide"), st.integers(0, STUDENTS - 1), st.just(0)),
        st.tuples(st.just("recount"), st.just(0), st.just(0)),
    ),
    max_size=12,
)


async def apply(op, who, rating, *, tutor, admin, students, bookings, reviews):
    async with transaction() as session:
        if op == "create":
            student = await session.get(User, students[who].id)
            review = await services.review_create(
                session, student=student, booking_id=bookings[who].id, rating=rating, text=TEXT
            )
            reviews[who] = review.id
        elif op == "update":
            student = await session.get(User, students[who].id)
            await services.review_update(
                session, student=student, review_id=reviews.get(who, MISSING), rating=rating, text=TEXT
            )
        elif op in ("hide", "unhide"):
            verb = services.review_hide if op == "hide" else services.review_unhide
            await verb(
                session, admin=await session.get(User, admin.id), review_id=reviews.get(who, MISSING), reason="Spam"
            )
        else:
            await services.reviews_recount(session, tutor_id=tutor.id)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_aggregates_match_the_visible_reviews_after_any_sequence(ops):
    tutor = await quick_user(role="tutor")
    await with_profile(tutor)
    admin = await quick_user(role="admin")
    students = [await quick_user() for _ in range(STUDENTS)]
    bookings = [await completed_lesson(tutor, s) for s in students]
    reviews: dict = {}
    model: dict[int, tuple[int, bool]] = {}  # student index -> (rating, hidden)
    for op, who, rating in ops:
        try:
            await apply(
                op, who, rating, tutor=tutor, admin=admin, students=students, bookings=bookings, reviews=reviews
            )
        except AppError:
            accepted = False
        else:
            accepted = True
        # What the model expects to be accepted, and its effect.
        if op == "create":
            assert accepted == (who not in model)
            model.setdefault(who, (rating, False))
        elif op == "update":
            assert accepted == (who in model and not model[who][1])
            if accepted:
                model[who] = (rating, False)
        elif op in ("hide", "unhide"):
            assert accepted == (who in model and model[who][1] == (op == "unhide"))
            if accepted:
                model[who] = (model[who][0], op == "hide")
        visible = [r for r, hidden in model.values() if not hidden]
        assert await aggregates(tutor.id) == (len(visible), sum(visible))
    async with transaction() as session:
        recounted = await services.reviews_recount(session, tutor_id=tutor.id)
    assert recounted == await aggregates(tutor.id)
