"""Booking pages through the HTTP app: confirm, hold, payment through the payments domain (the
offline provider's TEST MODE checkout), My lessons, detail, reschedule, cancel, accept/decline,
series; conflicts are a 409 with a clear message."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import select

from marketplace.db import session_factory
from scheduling.models import Booking, BookingMode, BookingStatus
from tests.helpers import csrf_token, log_in, log_out
from tests.scheduling.bookings_support import bookable_tutor, next_hour, student

PASSWORD = "correct horse battery"
START = next_hour(days=4, hour=9)  # 09:00 UTC = 10:00 in Berlin (winter)
ISO = START.strftime("%Y-%m-%dT%H:%M:%SZ")
SLUG = "clara-klavier"


async def slug_of(tutor) -> str:
    from marketplace.tutors.models import TutorProfile

    async with session_factory()() as session:
        return (await session.execute(select(TutorProfile.slug).where(TutorProfile.user_id == tutor.id))).scalar_one()


async def bookings_of(user) -> list[Booking]:
    async with session_factory()() as session:
        rows = await session.execute(select(Booking).where(Booking.student_id == user.id).order_by(Booking.starts_at))
        return list(rows.scalars())


async def book(client, slug, *, start=ISO, duration="60", **extra):
    path = f"/book/{slug}?start={quote(start)}&duration={duration}"
    token = await csrf_token(client, path)
    return await client.post(
        f"/book/{slug}",
        data={"_csrf_token": token, "start": start, "duration": duration, **extra},
        follow_redirects=False,
    )


async def post(client, path, data=None, page="/lessons"):
    token = await csrf_token(client, page)
    return await client.post(path, data={"_csrf_token": token, **(data or {})}, follow_redirects=False)


async def pay(client, booking_id, page="/lessons") -> None:
    """Pay one held booking as the payments pages do: POST /pay/{id} starts the offline provider's
    checkout, whose TEST MODE page accepts the "card"; the provider's event confirms (a job)."""
    started = await post(client, f"/pay/{booking_id}", page=page)
    assert started.status_code == 303, started.text
    url = started.headers["location"]
    assert url.startswith("/pay/offline/cs_test_")
    checkout = await client.get(url)
    assert checkout.status_code == 200
    token = re.search(r'name="_csrf_token" value="([^"]+)"', checkout.text).group(1)
    done = await client.post(url, data={"_csrf_token": token, "outcome": "succeed"}, follow_redirects=False)
    assert done.headers["location"] == f"/pay/{booking_id}/success"


async def test_anonymous_visitors_are_sent_to_log_in_and_back(client):
    tutor = await bookable_tutor()
    slug = await slug_of(tutor)
    response = await client.get(f"/book/{slug}?start={ISO}&duration=60", follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"].startswith("/login?next=")
    assert (
        quote(f"/book/{slug}", safe="") in response.headers["location"]
        or f"/book/{slug}" in response.headers["location"]
    )


async def test_the_whole_booking_flow_through_the_pages(client, drain_jobs):
    tutor = await bookable_tutor()
    stu = await student()
    slug = await slug_of(tutor)
    await log_in(client, stu.email, PASSWORD)

    page = await client.get(f"/book/{slug}?start={ISO}&duration=60")
    assert page.status_code == 200
    assert "Book a lesson with Clara Klavier" in page.text
    assert "€45.00" in page.text
    assert "10:00" in page.text  # Berlin time (the student's zone)
    assert "Free cancellation until 24 hours before the lesson." in page.text
    assert "50% of the price back" in page.text

    response = await book(client, slug)
    assert response.status_code == 303
    pay_path = response.headers["location"]
    [booking] = await bookings_of(stu)
    assert pay_path == f"/pay/{booking.id}"  # one lesson: straight to the payments review page
    assert (await client.get(f"/book/hold/{booking.id}/pay", follow_redirects=False)).headers["location"] == pay_path

    review = await client.get(pay_path)
    assert "Review and pay" in review.text and "TEST MODE" in review.text and "No real money moves" in review.text
    assert "more minutes" in review.text
    held = await client.get(f"/lessons/{booking.id}")
    assert f'href="/pay/{booking.id}"' in held.text and "lesson-notes-slot" not in held.text
    await pay(client, booking.id, page=pay_path)
    drain_jobs()
    [booking] = await bookings_of(stu)
    assert booking.status == BookingStatus.confirmed
    detail_path = f"/lessons/{booking.id}"
    success = await client.get(f"/pay/{booking.id}/success")
    assert "your lesson is confirmed" in success.text and f'href="{detail_path}"' in success.text

    lessons = await client.get("/lessons")
    assert lessons.status_code == 200
    assert f"/lessons/{booking.id}/room" in lessons.text and "Confirmed" in lessons.text

    detail = await client.get(detail_path)
    assert "Lesson with Clara Klavier" in detail.text
    assert f'hx-get="/lessons/{booking.id}/notes"' in detail.text and 'hx-trigger="load"' in detail.text
    assert f'<a href="/lessons/{booking.id}/notes">' in detail.text  # without JavaScript
    assert f'href="/lessons/{booking.id}/room"' in detail.text and "Join the lesson room" in detail.text
    assert 'id="receipt-link" href="/payments/' in detail.text
    assert "dispute-link" not in detail.text  # a lesson can be disputed once it has started
    receipt = await client.get(re.search(r'id="receipt-link" href="([^"]+)"', detail.text).group(1))
    assert receipt.status_code == 200 and "45.00" in receipt.text
    notes = await client.get(f"/lessons/{booking.id}/notes", headers={"HX-Request": "true"})
    assert notes.status_code == 200 and 'id="lesson-notes"' in notes.text
    assert "If you cancel now, you get the full price back: €45.00." in detail.text
    new = (START + timedelta(hours=2)).isoformat()
    assert f'value="{new}"' in detail.text  # a free slot offered for rescheduling

    moved = await post(client, f"{detail_path}/reschedule", {"start": new}, page=detail_path)
    assert moved.status_code == 303
    [booking] = await bookings_of(stu)
    assert booking.starts_at == START + timedelta(hours=2) and booking.reschedule_count == 1

    cancelled = await post(client, f"{detail_path}/cancel", {"reason": "ill"}, page=detail_path)
    assert cancelled.status_code == 303
    after = await client.get(detail_path)
    assert "The lesson is cancelled. Refund: €45.00." in after.text
    assert "Cancelled" in after.text


async def test_a_taken_slot_is_a_409_with_the_message_and_never_a_5xx(client):
    tutor = await bookable_tutor()
    first = await student()
    second = await student("other@example.com", "Olga Other")
    slug = await slug_of(tutor)
    await log_in(client, first.email, PASSWORD)
    assert (await book(client, slug)).status_code == 303
    await log_out(client)
    await log_in(client, second.email, PASSWORD)
    response = await book(client, slug)
    assert response.status_code == 409
    assert "This slot was just taken. Please choose another time." in response.text
    page = await client.get(f"/book/{slug}?start={ISO}&duration=60")
    assert page.status_code == 409 and "This slot was just taken" in page.text


async def test_refused_input_is_a_422_with_a_clear_message(client):
    tutor = await bookable_tutor(notice_minutes=24 * 60 * 10)
    stu = await student()
    slug = await slug_of(tutor)
    await log_in(client, stu.email, PASSWORD)
    response = await book(client, slug)
    assert response.status_code == 422
    assert "This tutor needs at least 240 hours notice" in response.text
    garbage = await client.get(f"/book/{slug}?start=yesterday&duration=xx")
    assert garbage.status_code == 422
    missing = await client.get("/book/nobody-here?start=2030-01-01T10:00:00Z&duration=60")
    assert missing.status_code == 404


async def test_weekly_series_reserves_every_week_or_lists_the_taken_dates(client, drain_jobs):
    tutor = await bookable_tutor()
    other = await student("other@example.com", "Olga Other")
    stu = await student()
    slug = await slug_of(tutor)
    await log_in(client, other.email, PASSWORD)
    taken = (START + timedelta(weeks=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await book(client, slug, start=taken)).status_code == 303
    await log_out(client)
    await log_in(client, stu.email, PASSWORD)

    preview = await client.get(f"/book/{slug}?start={ISO}&duration=60&repeat=1&weeks=3")
    assert preview.status_code == 200
    assert preview.text.count("This slot was just taken") == 1 and "Weekly lessons" in preview.text

    refused = await book(client, slug, repeat="1", weeks="3")
    assert refused.status_code == 409
    assert "1 lesson of this series cannot be booked" in refused.text
    assert await bookings_of(stu) == []

    ok = await book(client, slug, repeat="1", weeks="2")
    assert ok.status_code == 303
    pay_path = ok.headers["location"]
    assert re.fullmatch(r"/book/hold/[0-9a-f-]{36}/pay", pay_path)
    first, second = await bookings_of(stu)
    summary = await client.get(pay_path)
    assert "Your 2 lessons with Clara Klavier" in summary.text and "minutes left" in summary.text
    # One "Pay" form per lesson, each to the payments checkout.
    assert summary.text.count('action="/pay/') == 2
    assert f'action="/pay/{first.id}"' in summary.text and f'action="/pay/{second.id}"' in summary.text
    await pay(client, first.id, page=pay_path)
    drain_jobs()
    success = await client.get(f"/pay/{first.id}/success")
    assert f'href="/book/hold/{first.id}/pay"' in success.text  # back to the rest of the series
    summary = await client.get(pay_path)
    assert summary.text.count('action="/pay/') == 1 and f'action="/pay/{second.id}"' in summary.text
    assert "Paid" in summary.text
    await pay(client, second.id, page=pay_path)
    drain_jobs()
    rows = await bookings_of(stu)
    assert [b.status for b in rows] == [BookingStatus.confirmed] * 2
    assert rows[0].series_id == rows[1].series_id
    assert 'action="/pay/' not in (await client.get(pay_path)).text


async def test_tutors_accept_and_decline_requests_on_my_lessons(client, drain_jobs):
    tutor = await bookable_tutor(booking_mode=BookingMode.request)
    stu = await student()
    slug = await slug_of(tutor)
    await log_in(client, stu.email, PASSWORD)
    for start in (ISO, (START + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")):
        pay_path = (await book(client, slug, start=start)).headers["location"]
        await pay(client, pay_path.rsplit("/", 1)[1], page=pay_path)
    drain_jobs()
    assert "Waiting for the tutor" in (await client.get("/lessons")).text
    await log_out(client)

    await log_in(client, tutor.email, PASSWORD)
    page = await client.get("/lessons")
    assert "Requests waiting for your answer" in page.text
    first, second = await bookings_of(stu)
    assert (await post(client, f"/lessons/{first.id}/accept")).status_code == 303
    assert (await post(client, f"/lessons/{second.id}/decline")).status_code == 303
    first, second = await bookings_of(stu)
    assert (first.status, second.status, second.refund_amount) == (
        BookingStatus.confirmed,
        BookingStatus.declined,
        second.price_amount,
    )
    again = await post(client, f"/lessons/{second.id}/accept")
    assert again.status_code == 409 and "not waiting for your answer" in again.text


async def test_lessons_are_private_to_their_participants(client):
    tutor = await bookable_tutor()
    stu = await student()
    stranger = await student("x@example.com", "Xavier Stranger")
    slug = await slug_of(tutor)
    await log_in(client, stu.email, PASSWORD)
    pay_path = (await book(client, slug)).headers["location"]
    await log_out(client)
    await log_in(client, stranger.email, PASSWORD)
    [booking] = await bookings_of(stu)
    assert (await client.get(f"/lessons/{booking.id}")).status_code == 404
    assert (await client.get(pay_path)).status_code == 404
    assert (await client.get(f"/book/hold/{booking.id}/pay")).status_code == 404
    assert (await post(client, f"/lessons/{booking.id}/cancel")).status_code == 404
    assert (await post(client, f"/lessons/{booking.id}/accept")).status_code == 404
    assert (await post(client, pay_path, page="/lessons")).status_code == 404


async def test_the_booking_pages_never_confirm_a_payment_themselves(client):
    tutor = await bookable_tutor()
    stu = await student()
    slug = await slug_of(tutor)
    await log_in(client, stu.email, PASSWORD)
    assert (await book(client, slug)).status_code == 303
    [booking] = await bookings_of(stu)
    response = await post(client, f"/book/hold/{booking.id}/pay")
    assert response.status_code in (404, 405)
    [booking] = await bookings_of(stu)
    assert booking.status == BookingStatus.held and booking.paid_at is None


async def test_htmx_requests_get_the_same_pages(client):
    tutor = await bookable_tutor()
    stu = await student()
    slug = await slug_of(tutor)
    await log_in(client, stu.email, PASSWORD)
    hx = {"HX-Request": "true"}
    assert (await client.get("/lessons", headers=hx)).status_code == 200
    page = await client.get(f"/book/{slug}?start={ISO}&duration=60", headers=hx)
    assert page.status_code == 200 and "book-form" in page.text
    token = await csrf_token(client, "/lessons")
    first = await client.post(
        f"/book/{slug}",
        data={"start": ISO, "duration": "60"},
        headers={**hx, "x-csrftoken": token},
        follow_redirects=False,
    )
    assert first.status_code == 303
    again = await client.post(
        f"/book/{slug}",
        data={"start": ISO, "duration": "60"},
        headers={**hx, "x-csrftoken": token},
        follow_redirects=False,
    )
    assert again.status_code == 409 and "This slot was just taken" in again.text


async def test_admins_see_the_tutors_reliability_on_the_profile_page(client):
    from marketplace.db import transaction
    from marketplace.tutors.models import TutorProfile
    from scheduling import bookings as svc
    from tests.profiles.support import admin_user

    tutor = await bookable_tutor()
    stu = await student()
    now = START - timedelta(days=2)
    for hours in (0, 2):
        async with transaction() as session:
            b = await svc.booking_hold(
                session,
                student=stu,
                tutor_user_id=tutor.id,
                starts_at=START + timedelta(hours=hours),
                duration=60,
                now=now,
            )
            await svc.booking_confirm_payment(session, booking_id=b.id, now=now)
    async with transaction() as session:
        await svc.booking_cancel(session, actor=tutor, booking_id=b.id, now=now)
        profile_id = (
            await session.execute(select(TutorProfile.id).where(TutorProfile.user_id == tutor.id))
        ).scalar_one()
    admin = await admin_user()
    await log_in(client, admin.email, PASSWORD)
    page = await client.get(f"/admin/profiles/{profile_id}")
    assert page.status_code == 200
    assert "50% of 2 confirmed lessons kept (0 completed, 1 cancelled by the tutor, 0 missed by the tutor)" in page.text
