"""The onboarding wizard through HTTP: a tutor walks the steps, resumes where they stopped, gets
their input back with clear messages when it is wrong, and submits the profile for review."""

import re

import pytest
from litestar.testing import AsyncTestClient

from marketplace.db import session_factory
from marketplace.tutors import services
from marketplace.tutors.models import ProfileStatus, TutorProfile
from tests.helpers import csrf_token, log_in, make_user, post_form

PASSWORD = "correct horse battery"

BASICS = {"display_name": "Clara Klavier", "headline": "Jazz piano for adult beginners"}
TEACHING = {
    "instrument": ["piano", "organ"],
    "levels_piano": ["beginner", "advanced"],
    "levels_organ": ["intermediate"],
    "genre": ["jazz"],
    "age_group": ["adults", "teens"],
}
PLACE = {"language": ["de", "en"], "online": "1"}
PRICING = {"currency": "EUR", "offer_60": "1", "price_60": "45", "offer_30": "1", "price_30": "25,50"}


@pytest.fixture
async def client(app):
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as c:
        yield c


async def tutor(client, email="clara@example.com", name="Clara Klavier"):
    user = await make_user(email=email, role="tutor", name=name)
    await log_in(client, email, PASSWORD)
    return user


async def profile_of(user) -> TutorProfile | None:
    async with session_factory()() as session:
        return await services.profile_for_user(session, user=user)


async def step(client, name: str, data: dict):
    return await post_form(client, f"/tutor/profile/{name}", data, follow_redirects=False)


async def submit(client):
    return await post_form(client, "/tutor/profile/submit", {}, page="/tutor/profile/review", follow_redirects=False)


async def test_a_tutor_walks_every_step_reviews_and_submits(client):
    clara = await tutor(client)
    overview = await client.get("/tutor/profile")
    assert overview.status_code == 200
    assert "Status: draft." in overview.text
    assert 'href="/tutor/profile/basics"' in overview.text

    response = await step(client, "basics", BASICS)
    assert response.status_code == 303 and response.headers["location"] == "/tutor/profile/photo"
    response = await step(client, "teaching", TEACHING)
    assert response.status_code == 303 and response.headers["location"] == "/tutor/profile/place"
    response = await step(client, "place", PLACE)
    assert response.status_code == 303 and response.headers["location"] == "/tutor/profile/pricing"
    response = await step(client, "pricing", PRICING)
    assert response.status_code == 303 and response.headers["location"] == "/tutor/profile/about"

    profile = await profile_of(clara)
    assert profile.onboarding_step == 5
    assert profile.draft["instruments"] == [
        {"slug": "piano", "levels": ["beginner", "advanced"]},
        {"slug": "organ", "levels": ["intermediate"]},
    ]
    assert profile.draft["durations"] == [{"minutes": 30, "price": 2550}, {"minutes": 60, "price": 4500}]

    review = await client.get("/tutor/profile/review")
    assert review.status_code == 200
    assert "€45.00" in review.text and "€25.50" in review.text
    assert "Piano: Beginner, Advanced" in review.text
    assert "Still missing" not in review.text
    assert 'action="/tutor/profile/submit"' in review.text

    response = await submit(client)
    assert response.status_code == 303 and response.headers["location"] == "/tutor/profile"
    assert (await profile_of(clara)).status == ProfileStatus.pending
    after = await client.get("/tutor/profile")
    assert "Thank you! An admin will review your profile." in after.text
    assert "Status: waiting for review." in after.text


async def test_the_review_is_in_the_viewers_language(client):
    clara = await make_user(email="clara@example.com", role="tutor", locale="de")
    await log_in(client, "clara@example.com", PASSWORD)
    await step(client, "teaching", TEACHING)
    await step(client, "pricing", PRICING)
    review = await client.get("/tutor/profile/review")
    assert "45,00\xa0€" in review.text
    assert "Klavier" in review.text  # the taxonomy's German name
    page = await client.get("/tutor/profile/teaching")
    assert page.text.index("Akkordeon") < page.text.index("Bratsche") < page.text.index("Klavier")
    assert (await profile_of(clara)).draft["currency"] == "EUR"


async def test_resuming_opens_the_next_incomplete_step(client):
    await tutor(client)
    await step(client, "basics", BASICS)
    overview = await client.get("/tutor/profile")
    assert re.search(r'<a class="button" href="/tutor/profile/photo">\s*Continue where you left off', overview.text)
    # The optional photo is skipped once a later step is saved.
    await step(client, "teaching", TEACHING)
    overview = await client.get("/tutor/profile")
    assert re.search(r'<a class="button" href="/tutor/profile/place">\s*Continue where you left off', overview.text)
    assert "Optional, skipped" in overview.text
    # The form shows what was saved.
    teaching = await client.get("/tutor/profile/teaching")
    assert re.search(r'id="f-instrument-piano" name="instrument" value="piano"\s+checked', teaching.text)
    assert re.search(
        r'id="f-levels_organ-intermediate" name="levels_organ" value="intermediate"\s+checked', teaching.text
    )
    assert 'value="Jazz piano for adult beginners"' in (await client.get("/tutor/profile/basics")).text


@pytest.mark.parametrize(
    ("name", "data", "field", "message", "kept"),
    [
        ("basics", {"display_name": "Clara", "headline": ""}, "headline", "Write a short headline", 'value="Clara"'),
        (
            "basics",
            {"display_name": "Clara", "headline": "<b>Loud</b> piano"},
            "headline",
            "Plain text only",
            'value="&lt;b&gt;Loud&lt;/b&gt; piano"',
        ),
        (
            "teaching",
            {"instrument": ["piano"], "age_group": ["adults"], "genre": ["jazz"]},
            "levels_piano",
            "Choose the levels you teach.",
            r'value="jazz"\s+checked',
        ),
        (
            "place",
            {"language": ["de"], "in_person": "1", "city": "", "travel_radius_km": "20"},
            "city",
            "Choose the city where you teach in person.",
            'value="20"',
        ),
        (
            "place",
            {"language": ["de"], "in_person": "1", "city": "Madrid", "travel_radius_km": "999"},
            "travel_radius_km",
            "Enter a travel distance from 0 to 200 km.",
            'value="999"',
        ),
        (
            "pricing",
            {"currency": "EUR", "offer_60": "1", "price_60": "1000000"},
            "price_60",
            "Enter a price between €5.00 and €1,000.00.",
            'value="1000000"',
        ),
        (
            "pricing",
            {"currency": "EUR", "offer_60": "1", "price_60": "45", "trial": "1", "trial_minutes": "45"},
            "trial_minutes",
            "Choose a trial length from the list.",
            'value="45"',
        ),
    ],
)
async def test_bad_input_comes_back_with_the_message_and_nothing_is_stored(client, name, data, field, message, kept):
    clara = await tutor(client)
    response = await step(client, name, data)
    assert response.status_code == 422
    assert message in response.text
    assert f'id="f-{field}-error"' in response.text
    assert re.search(r'aria-describedby="[^"]*f-' + re.escape(field) + '-error"', response.text)
    assert re.search(kept, response.text), kept
    profile = await profile_of(clara)
    assert profile.onboarding_step == 0
    assert set(profile.draft) == {"display_name"} and profile.draft["display_name"] == "Clara Klavier"


async def test_unknown_taxonomy_slugs_are_refused(client):
    clara = await tutor(client)
    response = await step(client, "teaching", {**TEACHING, "instrument": ["piano", "theremin-9000"]})
    assert response.status_code == 422 and "Choose only from the list." in response.text
    response = await step(client, "place", {"language": ["de", "klingon"], "online": "1"})
    assert response.status_code == 422 and "Choose only from the list." in response.text
    assert "instruments" not in (await profile_of(clara)).draft


async def test_the_city_is_picked_from_suggestions_or_resolved_from_the_typed_name(client):
    clara = await tutor(client)
    options = await client.get("/tutor/profile/cities", params={"q": "madr"}, headers={"hx-request": "true"})
    assert options.status_code == 200
    match = re.search(r'name="city_id" value="(\d+)"\s*>\s*<label for="f-city_id-\d+">Madrid, ES</label>', options.text)
    assert match, options.text
    madrid_id = match.group(1)
    assert "<html" not in options.text
    assert "No city matches" in (await client.get("/tutor/profile/cities", params={"q": "qqqzz"})).text

    # Picked from the suggestions (with JavaScript).
    response = await step(
        client,
        "place",
        {"language": ["es"], "in_person": "1", "city": "madr", "city_id": madrid_id, "travel_radius_km": "10"},
    )
    assert response.status_code == 303
    draft = (await profile_of(clara)).draft
    assert draft["city"]["name"] == "Madrid" and draft["city"]["country"] == "ES" and draft["travel_radius_km"] == 10
    assert 'value="Madrid, ES"' in (await client.get("/tutor/profile/place")).text

    # Typed without JavaScript: the biggest city of that name; a stale pick loses to the typed text.
    response = await step(
        client, "place", {"language": ["de"], "in_person": "1", "city": "Berlin", "city_id": madrid_id}
    )
    assert response.status_code == 303
    assert (await profile_of(clara)).draft["city"]["country"] == "DE"

    response = await step(client, "place", {"language": ["de"], "in_person": "1", "city": "Xqzvillezz"})
    assert response.status_code == 422 and "We found no city called" in response.text


async def test_an_incomplete_profile_is_not_submitted(client):
    clara = await tutor(client)
    await step(client, "basics", BASICS)
    review = await client.get("/tutor/profile/review")
    assert "Still missing" in review.text and 'href="/tutor/profile/pricing"' in review.text
    response = await submit(client)
    assert response.status_code == 422
    assert "Your profile is not complete yet." in response.text and "Instruments and levels" in response.text
    assert (await profile_of(clara)).status == ProfileStatus.draft


async def test_an_approved_profile_with_material_changes_is_sent_for_review(client):
    from marketplace.db import transaction

    admin = await make_user(email="root@example.com", role="admin")
    clara = await tutor(client)
    for name, data in (("basics", BASICS), ("teaching", TEACHING), ("place", PLACE), ("pricing", PRICING)):
        await step(client, name, data)
    await submit(client)
    async with transaction() as session:
        await services.profile_approve(session, admin=admin, profile_id=(await profile_of(clara)).id)
    await step(client, "basics", {**BASICS, "headline": "Now also teaching organ"})
    response = await submit(client)
    assert response.status_code == 303
    overview = await client.get("/tutor/profile")
    assert "Your changes were sent for review; your current profile stays visible." in overview.text
    assert "Status: published, changes waiting for review." in overview.text


async def test_a_rejected_profile_shows_the_reason(client):
    from marketplace.db import transaction

    admin = await make_user(email="root@example.com", role="admin")
    clara = await tutor(client)
    for name, data in (("basics", BASICS), ("teaching", TEACHING), ("place", PLACE), ("pricing", PRICING)):
        await step(client, name, data)
    await submit(client)
    async with transaction() as session:
        await services.profile_reject(
            session, admin=admin, profile_id=(await profile_of(clara)).id, reason="Please add a real photo."
        )
    overview = await client.get("/tutor/profile")
    assert "Status: changes needed." in overview.text and "Please add a real photo." in overview.text


async def test_unknown_steps_are_404(client):
    await tutor(client)
    assert (await client.get("/tutor/profile/hobbies")).status_code == 404
    assert (await post_form(client, "/tutor/profile/hobbies", {}, page="/tutor/profile")).status_code == 404


async def test_students_get_403_and_visitors_are_sent_to_log_in(client):
    response = await client.get("/tutor/profile/pricing", follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/login?next=/tutor/profile/pricing"
    assert (await client.get("/tutor/profile/cities?q=madr", follow_redirects=False)).status_code in (302, 303)
    await make_user(email="sam@example.com")
    await log_in(client, "sam@example.com", PASSWORD)
    assert (await client.get("/tutor/profile")).status_code == 403
    assert (await client.get("/tutor/profile/basics")).status_code == 403
    token = await csrf_token(client, "/")
    response = await client.post("/tutor/profile/basics", data={"_csrf_token": token, **BASICS})
    assert response.status_code == 403


async def test_a_post_without_the_csrf_token_is_refused(client):
    clara = await tutor(client)
    await client.get("/tutor/profile/basics")
    response = await client.post("/tutor/profile/basics", data=BASICS)
    assert response.status_code == 403
    assert "headline" not in (await profile_of(clara)).draft
    response = await client.post("/tutor/profile/submit", data={})
    assert response.status_code == 403


async def test_the_pricing_page_shows_the_allowed_range_and_every_duration(client):
    await tutor(client)
    page = await client.get("/tutor/profile/pricing")
    assert "between €5.00 and €1,000.00" in page.text
    for minutes in (30, 45, 60, 90, 120):
        assert f'name="offer_{minutes}"' in page.text and f'for="f-price_{minutes}"' in page.text
    assert "¥500" in page.text  # the range table covers every currency


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    import io
    import os

    from PIL import Image

    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (200, 120, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def upload(client, data: bytes, name: str = "me.png"):
    token = await csrf_token(client, "/tutor/profile/photo")
    return await client.post(
        "/tutor/profile/photo",
        data={"_csrf_token": token},
        files={"photo": (name, data, "image/png")},
        follow_redirects=False,
    )


async def test_a_photo_is_checked_reencoded_and_stored_as_renditions(client):
    from marketplace.settings import get_settings

    clara = await tutor(client)
    response = await upload(client, b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "me.svg")
    assert response.status_code == 422 and "This file is not a photo we can read." in response.text
    assert 'aria-describedby="f-photo-hint f-photo-error"' in response.text
    response = await upload(client, png(120, 120))
    assert response.status_code == 422 and "This photo is too small" in response.text
    assert "photo" not in (await profile_of(clara)).draft

    # Bigger than the app's usual 2 MB body limit, still within the photo limit.
    big = png(1000, 1000, noise=True)
    assert len(big) > 2 * 1024 * 1024
    response = await upload(client, big)
    assert response.status_code == 303 and response.headers["location"] == "/tutor/profile/teaching"
    photo = (await profile_of(clara)).draft["photo"]
    assert photo["sizes"] == [96, 256, 640]
    stored = get_settings().var_dir / "media" / "tutors" / f"{photo['hash']}-256.webp"
    assert stored.is_file()
    preview = await client.get("/tutor/profile/photo/256")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/webp"
    assert preview.content == stored.read_bytes()
    assert (await client.get("/tutor/profile/photo/999")).status_code == 404
    assert 'src="/tutor/profile/photo/256"' in (await client.get("/tutor/profile/photo")).text


async def test_the_about_step_keeps_markdown_and_a_canonical_video_link(client):
    clara = await tutor(client)
    bad = {"bio": "Hi", "intro_video": "https://example.com/v/1", "experience_years": "81", "qualifications": "x"}
    response = await step(client, "about", bad)
    assert response.status_code == 422
    assert "Videos from example.com are not supported." in response.text
    assert "Enter a number of years from 0 to 80." in response.text
    assert 'value="https://example.com/v/1"' in response.text
    assert "bio" not in (await profile_of(clara)).draft
    response = await step(client, "about", {"bio": "x" * 5001})
    assert response.status_code == 422 and "At most 5000 characters" in response.text

    good = {
        "bio": "I teach **jazz** <script>alert(1)</script>",
        "intro_video": "https://youtu.be/dQw4w9WgXcQ?t=3",
        "experience_years": "12",
        "qualifications": "Diploma, Berklee",
    }
    response = await step(client, "about", good)
    assert response.status_code == 303 and response.headers["location"] == "/tutor/profile/review"
    draft = (await profile_of(clara)).draft
    assert draft["bio"] == good["bio"]  # the raw Markdown; rendered and sanitised when shown
    assert draft["intro_video"] == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert draft["experience_years"] == 12
    review = await client.get("/tutor/profile/review")
    assert "<strong>jazz</strong>" in review.text and "<script>alert(1)" not in review.text
