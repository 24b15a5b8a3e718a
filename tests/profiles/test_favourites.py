"""Students save tutors ("my tutors"); the toggle works with htmx and as a plain form."""

from __future__ import annotations

from sqlalchemy import func, select

from marketplace.db import session_factory, transaction
from marketplace.tutors import services
from marketplace.tutors.models import Favourite
from tests.helpers import count_statements, csrf_token, log_in, make_user, post_form
from tests.profiles.support import PASSWORD, add_reviews, admin_user, approved_tutor


async def favourites() -> int:
    async with session_factory()() as session:
        return (await session.execute(select(func.count()).select_from(Favourite))).scalar_one()


async def student_client(client, email="stu@example.com"):
    await make_user(email=email, name="Stu Dent")
    await log_in(client, email, PASSWORD)


async def test_a_student_saves_and_forgets_a_tutor_with_plain_forms(client):
    tutor, profile = await approved_tutor()
    await add_reviews(tutor, 2)
    await student_client(client)
    page = f"/tutors/{profile.slug}"
    assert 'aria-pressed="false"' in (await client.get(page)).text
    saved = await post_form(client, f"{page}/favourite", {}, page=page, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == page
    again = await post_form(client, f"{page}/favourite", {}, page=page)  # idempotent
    assert again.status_code == 200 and "Saved to your tutors." in again.text
    assert 'aria-pressed="true"' in again.text and await favourites() == 1
    mine = await client.get("/my/tutors")
    assert mine.status_code == 200
    assert f'href="/tutors/{profile.slug}">Clara Klavier</a>' in mine.text
    assert "Jazz piano for adult beginners" in mine.text and "4.5" in mine.text and "2 reviews" in mine.text
    removed = await post_form(client, f"{page}/unfavourite", {"next": "/my/tutors"}, page=page, follow_redirects=False)
    assert removed.status_code == 303 and removed.headers["location"] == "/my/tutors"
    assert await favourites() == 0
    assert "You have not saved any tutors yet." in (await client.get("/my/tutors")).text


async def test_htmx_gets_the_toggle_button_back(client):
    _tutor, profile = await approved_tutor()
    await student_client(client)
    token = await csrf_token(client, f"/tutors/{profile.slug}")
    headers = {"HX-Request": "true", "x-csrftoken": token}
    on = await client.post(f"/tutors/{profile.slug}/favourite", headers=headers)
    assert on.status_code == 200 and on.text.lstrip().startswith("<form")
    assert 'aria-pressed="true"' in on.text and f'hx-post="/tutors/{profile.slug}/unfavourite"' in on.text
    off = await client.post(f"/tutors/{profile.slug}/unfavourite", headers=headers)
    assert 'aria-pressed="false"' in off.text and f'hx-post="/tutors/{profile.slug}/favourite"' in off.text
    assert await favourites() == 0


async def test_only_students_save_tutors_and_only_public_profiles(client):
    _tutor, profile = await approved_tutor()
    page = f"/tutors/{profile.slug}"
    anonymous = await client.get("/my/tutors", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
    await make_user(email="other@example.com", role="tutor")
    await log_in(client, "other@example.com", PASSWORD)
    assert (await post_form(client, f"{page}/favourite", {}, page=page)).status_code == 403
    assert (await client.get("/my/tutors")).status_code == 403
    await student_client(client)
    admin = await admin_user()
    async with transaction() as session:
        await services.profile_suspend(session, admin=admin, profile_id=profile.id, reason="Spam")
    assert (await post_form(client, f"{page}/favourite", {}, page="/my/tutors")).status_code == 404
    assert await favourites() == 0


async def test_my_tutors_needs_the_same_number_of_statements_for_1_and_8_tutors(client):
    await student_client(client)
    _tutor, first = await approved_tutor("t0@example.com", "Tutor Zero")
    await post_form(client, f"/tutors/{first.slug}/favourite", {}, page=f"/tutors/{first.slug}")
    await client.get("/my/tutors")
    with count_statements() as few:
        page = await client.get("/my/tutors")
    assert "Tutor Zero" in page.text
    for n in range(1, 8):
        _tutor, profile = await approved_tutor(f"t{n}@example.com", f"Tutor Number{n}")
        await post_form(client, f"/tutors/{profile.slug}/favourite", {}, page=f"/tutors/{profile.slug}")
    with count_statements() as many:
        page = await client.get("/my/tutors")
    assert "Tutor Number7" in page.text
    assert len(many) == len(few), (len(few), len(many))
