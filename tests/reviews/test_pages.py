"""Reviews through the HTTP app: the student's review page, the tutor's replies, admin moderation,
validation re-rendering with 422, authorization and CSRF."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from marketplace.accounts.models import User
from marketplace.audit import AuditEntry
from marketplace.db import session_factory, transaction, utcnow
from marketplace.reviews import services
from marketplace.reviews.models import Review
from tests.helpers import log_in, log_out, make_user, post_form
from tests.reviews.support import PASSWORD, aggregates, all_reviews, completed_lesson, quick_user, with_profile

GOOD_TEXT = "A patient teacher; my scales finally make sense."


@pytest.fixture
async def people():
    tutor = await make_user(email="clara@example.com", role="tutor", name="Clara Klavier")
    await with_profile(tutor)
    student = await make_user(email="ana@example.com", name="Ana Student")
    booking = await completed_lesson(tutor, student)
    return tutor, student, booking


def review_url(booking) -> str:
    return f"/lessons/{booking.id}/review"


async def write(client, booking, follow_redirects=True, **data):
    form = {"rating": "5", "text": GOOD_TEXT, **data}
    return await post_form(client, review_url(booking), form, follow_redirects=follow_redirects)


async def test_a_student_reviews_a_lesson_on_an_accessible_page_and_the_rating_counts(client, people):
    tutor, _student, booking = people
    await log_in(client, "ana@example.com", PASSWORD)
    form = await client.get(review_url(booking))
    assert form.status_code == 200 and "Clara Klavier" in form.text
    assert "<legend>Rating</legend>" in form.text
    assert form.text.count('type="radio" id="f-rating-') == 5 and '<label for="f-rating-1">1 star</label>' in form.text
    assert '<label for="f-text">Your review</label>' in form.text and 'id="f-text" name="text"' in form.text
    saved = await write(client, booking, rating="4", follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == review_url(booking)
    page = await client.get(review_url(booking))
    assert "Thank you! Your review was saved." in page.text and "You can edit your review until" in page.text
    assert 'name="review_id"' in page.text
    assert await aggregates(tutor.id) == (1, 4)


async def test_without_a_completed_lesson_the_page_and_the_post_are_refused(client, people):
    tutor, student, booking = people
    await make_user(email="eve@example.com", name="Eve Other")
    await log_in(client, "eve@example.com", PASSWORD)
    assert (await client.get(review_url(booking))).status_code == 403
    refused = await post_form(client, review_url(booking), {"rating": "5", "text": GOOD_TEXT}, page="/")
    assert refused.status_code == 403 and "only review a lesson that you took" in refused.text
    assert (await client.get("/lessons/not-a-uuid/review")).status_code == 404
    await log_out(client)
    await log_in(client, "clara@example.com", PASSWORD)  # the tutor of the lesson is not its student
    assert (await client.get(review_url(booking))).status_code == 403
    assert await all_reviews() == [] and await aggregates(tutor.id) == (0, 0)
    assert student.id == booking.student_id


async def test_signed_out_visitors_are_sent_to_log_in(client, people):
    _tutor, _student, booking = people
    response = await client.get(review_url(booking), follow_redirects=False)
    assert response.status_code in (302, 303, 307) and response.headers["location"].startswith("/login?next=")


async def test_a_second_review_of_the_same_booking_is_a_conflict(client, people):
    _tutor, _student, booking = people
    await log_in(client, "ana@example.com", PASSWORD)
    await write(client, booking)
    token_page = "/account/settings"
    again = await post_form(client, review_url(booking), {"rating": "1", "text": GOOD_TEXT}, page=token_page)
    assert again.status_code == 409 and "already reviewed this lesson" in again.text
    assert [r.rating for r in await all_reviews()] == [5]


async def test_the_student_edits_within_seven_days_but_not_after(client, people):
    tutor, _student, booking = people
    await log_in(client, "ana@example.com", PASSWORD)
    await write(client, booking, rating="5")
    review = (await all_reviews())[0]
    edited = await write(
        client, booking, rating="3", text="Good, but a bit rushed at the end.", review_id=str(review.id)
    )
    assert edited.status_code == 200 and "Your review was updated." in edited.text
    assert await aggregates(tutor.id) == (1, 3)
    async with transaction() as session:
        await session.execute(
            update(Review).where(Review.id == review.id).values(editable_until=utcnow() - timedelta(minutes=1))
        )
    page = await client.get(review_url(booking))
    assert "can no longer be changed" in page.text and 'name="text"' not in page.text
    late = await post_form(
        client, review_url(booking), {"rating": "1", "text": GOOD_TEXT, "review_id": str(review.id)}, page="/"
    )
    assert late.status_code == 403
    assert [(r.rating, r.text) for r in await all_reviews()] == [(3, "Good, but a bit rushed at the end.")]


@pytest.mark.parametrize(
    ("rating", "text", "message"),
    [
        ("0", GOOD_TEXT, "Choose a rating from 1 to 5 stars."),
        ("6", GOOD_TEXT, "Choose a rating from 1 to 5 stars."),
        ("abc", GOOD_TEXT, "Choose a rating from 1 to 5 stars."),
        ("5", "x" * 10_000, "at most 2000 characters"),
        ("5", "Nice lesson <script>alert(1)</script>", "Please write plain text"),
        ("5", "short", "at least 10 characters"),
    ],
)
async def test_bad_input_gets_the_form_back_with_422_and_nothing_is_saved(client, people, rating, text, message):
    tutor, _student, booking = people
    await log_in(client, "ana@example.com", PASSWORD)
    response = await write(client, booking, rating=rating, text=text)
    assert response.status_code == 422
    assert (
        message in response.text
        and 'aria-invalid="true"' in response.text
        and "<legend>Rating</legend>" in response.text
    )
    assert "<script>alert" not in response.text  # what was typed comes back escaped
    assert await all_reviews() == [] and await aggregates(tutor.id) == (0, 0)


async def test_the_tutor_replies_once_and_another_tutor_cannot(client, people):
    _tutor, _student, booking = people
    await make_user(email="otto@example.com", role="tutor", name="Otto Orgel")
    await log_in(client, "ana@example.com", PASSWORD)
    await write(client, booking)
    review = (await all_reviews())[0]
    await log_out(client)

    await log_in(client, "otto@example.com", PASSWORD)
    other = await post_form(client, f"/reviews/{review.id}/reply", {"reply": "Not mine"}, page="/tutor/reviews")
    assert other.status_code == 403
    await log_out(client)

    await log_in(client, "clara@example.com", PASSWORD)
    listing = await client.get("/tutor/reviews")
    assert listing.status_code == 200 and "Ana Student" in listing.text and GOOD_TEXT in listing.text
    assert f'action="/reviews/{review.id}/reply"' in listing.text
    empty = await post_form(client, f"/reviews/{review.id}/reply", {"reply": "  "}, page="/tutor/reviews")
    assert empty.status_code == 422 and "Please write your reply." in empty.text
    done = await post_form(client, f"/reviews/{review.id}/reply", {"reply": "Thank you, Ana!"}, page="/tutor/reviews")
    assert done.status_code == 200 and "Your reply was published." in done.text and "Thank you, Ana!" in done.text
    assert f'action="/reviews/{review.id}/reply"' not in done.text
    twice = await post_form(client, f"/reviews/{review.id}/reply", {"reply": "Once more"}, page="/tutor/reviews")
    assert twice.status_code == 409
    assert (await all_reviews())[0].reply_text == "Thank you, Ana!"


async def test_admins_hide_with_a_reason_and_the_aggregate_and_audit_log_follow(client, people):
    tutor, _student, booking = people
    await make_user(email="root@example.com", role="admin")
    await log_in(client, "ana@example.com", PASSWORD)
    await write(client, booking, rating="2")
    assert (await client.get("/admin/reviews")).status_code == 403
    refused = await post_form(client, f"/admin/reviews/{(await all_reviews())[0].id}/hide", {"reason": "x"}, page="/")
    assert refused.status_code == 403
    await log_out(client)

    review = (await all_reviews())[0]
    await log_in(client, "root@example.com", PASSWORD)
    listing = await client.get("/admin/reviews")
    assert listing.status_code == 200 and GOOD_TEXT in listing.text and "Clara Klavier" in listing.text
    no_reason = await post_form(client, f"/admin/reviews/{review.id}/hide", {"reason": " "}, page="/admin/reviews")
    assert no_reason.status_code == 422 and "Give a reason" in no_reason.text
    assert await aggregates(tutor.id) == (1, 2)
    hidden = await post_form(
        client, f"/admin/reviews/{review.id}/hide", {"reason": "Contains a phone number"}, page="/admin/reviews"
    )
    assert hidden.status_code == 200 and "The review is now hidden." in hidden.text
    assert "Contains a phone number" in hidden.text
    assert await aggregates(tutor.id) == (0, 0)
    async with session_factory()() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.action == "review.hide"))).scalar_one()
    assert entry.target_id == str(review.id) and entry.reason == "Contains a phone number"
    only_hidden = await client.get("/admin/reviews?status=hidden")
    assert GOOD_TEXT in only_hidden.text
    assert GOOD_TEXT not in (await client.get("/admin/reviews?status=visible")).text

    shown = await post_form(client, f"/admin/reviews/{review.id}/unhide", {"reason": ""}, page="/admin/reviews")
    assert shown.status_code == 200 and "The review is visible again." in shown.text
    assert await aggregates(tutor.id) == (1, 2)


async def test_the_admin_list_is_paginated(client, people):
    tutor, _student, _booking = people
    await make_user(email="root@example.com", role="admin")
    for n in range(26):
        student = await quick_user(name=f"Student {n}")
        booking = await completed_lesson(tutor, student)
        async with transaction() as session:
            await services.review_create(
                session, student=await session.get(User, student.id), booking_id=booking.id, rating=5, text=GOOD_TEXT
            )
    await log_in(client, "root@example.com", PASSWORD)
    first = await client.get("/admin/reviews")
    assert "26 reviews" in first.text and first.text.count('action="/admin/reviews/') == 25
    assert "page=2" in first.text
    second = await client.get("/admin/reviews?page=2")
    assert second.text.count('action="/admin/reviews/') == 1


async def test_a_post_without_the_csrf_token_is_refused(client, people):
    _tutor, _student, booking = people
    await log_in(client, "ana@example.com", PASSWORD)
    response = await client.post(review_url(booking), data={"rating": "5", "text": GOOD_TEXT})
    assert response.status_code == 403
    assert await all_reviews() == []


async def test_students_find_their_past_lessons_with_a_review_link_on_the_dashboard(client):
    from datetime import timedelta

    from marketplace.db import transaction, utcnow
    from scheduling.services import booking_record_completed
    from tests.helpers import log_in, make_user

    tutor = await make_user(email="tom@example.com", role="tutor", name="Tom Tutor")
    student = await make_user(email="sam@example.com")
    start = utcnow() - timedelta(days=2)
    async with transaction() as session:
        booking = await booking_record_completed(
            session,
            tutor_id=tutor.id,
            student_id=student.id,
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            price_amount=4500,
            currency="EUR",
        )
    await log_in(client, "sam@example.com", "correct horse battery")
    page = await client.get("/dashboard")
    assert page.status_code == 200 and "Tom Tutor" in page.text
    assert f'href="/lessons/{booking.id}/review">Review this lesson' in page.text
