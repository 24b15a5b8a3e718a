"""The public profile page: the live version, structured data, visibility, reviews."""

from __future__ import annotations

import json
import re

from marketplace.db import transaction
from marketplace.tutors import services
from tests.helpers import count_statements, log_in, make_user
from tests.profiles.support import PASSWORD, add_reviews, admin_user, approved_tutor, set_live
from tests.tutors_profiles.test_moderation import fill, submit

JSONLD_RE = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


def json_ld(html: str) -> dict:
    (block,) = JSONLD_RE.findall(html)
    return json.loads(block)


def meta(html: str, prop: str) -> str:
    match = re.search(rf'<meta property="{re.escape(prop)}" content="([^"]*)">', html)
    assert match, f"no {prop}"
    return match.group(1)


async def test_the_page_shows_the_live_version_while_an_edit_waits_for_review(client):
    tutor, profile = await approved_tutor()
    await fill(tutor, {"basics": {"display_name": ["Clara Klavier"], "headline": ["Now also teaching organ"]}})
    assert (await submit(tutor)).changes_pending
    page = await client.get(f"/tutors/{profile.slug}")
    assert page.status_code == 200
    html = page.text
    assert "Jazz piano for adult beginners" in html and "Now also teaching organ" not in html
    assert '<h1 id="profile-name">Clara Klavier</h1>' in html
    assert "<strong>jazz</strong>" in html and "<li>standards</li>" in html  # the rendered bio
    assert "Piano: Beginner, Advanced" in html and "Jazz" in html and "Adults" in html
    assert "German, English" in html
    assert "Berlin, Germany" in html and "In person, up to 15 km away" in html and "Online" in html
    assert "45 minutes: €35.00" in html and "60 minutes: €45.00" in html
    assert "Trial lesson, 30 minutes: €15.00" in html
    assert "12 years of teaching experience" in html and "Master of Music, Berlin" in html
    assert f'src="/media/tutors/{profile.live["photo"]["hash"]}-256.webp"' in html
    assert 'action="/messages/start"' in html and f'name="tutor_id" value="{tutor.id}"' in html
    assert 'href="#book"' in html and 'id="week-picker"' in html  # the booking section: the week picker
    # The video is a link to its own page: no third-party frame on the profile itself.
    assert "<iframe" not in html and "youtube.com/" not in html and "youtube-nocookie.com/" not in html
    assert f'href="/tutors/{profile.slug}/video"' in html and "Play video from YouTube" in html
    video = await client.get(f"/tutors/{profile.slug}/video")
    assert video.status_code == 200
    assert 'src="https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"' in video.text
    assert (
        "frame-src https://www.youtube-nocookie.com https://player.vimeo.com"
        in video.headers["content-security-policy"]
    )


async def test_json_ld_and_open_graph_describe_the_tutor(client):
    tutor, profile = await approved_tutor()
    await add_reviews(tutor, 3)  # ratings 5, 4, 5
    html = (await client.get(f"/tutors/{profile.slug}")).text
    data = json_ld(html)
    base = "http://testserver.local"
    image = f"{base}/media/tutors/{profile.live['photo']['hash']}-640.jpg"
    assert data["@context"] == "https://schema.org" and data["@type"] == "ProfessionalService"
    assert data["name"] == "Clara Klavier" and data["description"] == "Jazz piano for adult beginners"
    assert data["url"] == f"{base}/tutors/{profile.slug}" and data["image"] == image
    assert data["address"] == {"@type": "PostalAddress", "addressLocality": "Berlin", "addressCountry": "DE"}
    assert data["aggregateRating"]["ratingValue"] == "4.7" and data["aggregateRating"]["reviewCount"] == 3
    offers = {(o["price"], o["priceCurrency"]) for o in data["makesOffer"]}
    assert offers == {("35.00", "EUR"), ("45.00", "EUR"), ("15.00", "EUR")}
    assert meta(html, "og:type") == "profile"
    assert meta(html, "og:title") == "Clara Klavier"
    assert meta(html, "og:description") == "Jazz piano for adult beginners"
    assert meta(html, "og:image") == image
    assert meta(html, "og:url") == f"{base}/tutors/{profile.slug}"
    assert 'role="img" aria-label="Rated 4.7 out of 5 from 3 reviews">★★★★★<' in html


async def test_json_ld_cannot_be_closed_by_a_headline(client):
    _tutor, profile = await approved_tutor()
    await set_live(profile.id, headline='Piano </script><script>alert(1)</script> & "more"')
    html = (await client.get(f"/tutors/{profile.slug}")).text
    assert "<script>alert(1)" not in html
    assert len(JSONLD_RE.findall(html)) == 1
    assert json_ld(html)["description"] == 'Piano </script><script>alert(1)</script> & "more"'
    assert "\\u003c/script\\u003e" in html


async def test_pending_suspended_and_banned_profiles_are_hidden_from_the_public_but_not_from_admins(client):
    admin = await admin_user()
    pending_tutor = await make_user(email="pending@example.com", role="tutor", name="Pia Pending")
    pending = await fill(pending_tutor)
    await submit(pending_tutor)
    _suspended_tutor, suspended = await approved_tutor("sus@example.com", "Sue Suspended")
    async with transaction() as session:
        await services.profile_suspend(session, admin=admin, profile_id=suspended.id, reason="Spam")
    banned_tutor, banned = await approved_tutor("ban@example.com", "Ben Banned")
    async with transaction() as session:
        from marketplace.accounts.models import User
        from marketplace.db import utcnow

        (await session.get(User, banned_tutor.id)).banned_at = utcnow()
    for slug in (pending.slug, suspended.slug, banned.slug, "nobody-here"):
        assert (await client.get(f"/tutors/{slug}")).status_code == 404, slug
    await make_user(email="stu@example.com")
    await log_in(client, "stu@example.com", PASSWORD)
    assert (await client.get(f"/tutors/{suspended.slug}")).status_code == 404
    await log_in(client, "root@example.com", PASSWORD)
    page = await client.get(f"/tutors/{suspended.slug}")
    assert page.status_code == 200 and "This profile is suspended: only admins can see it." in page.text
    assert f'href="/admin/profiles/{suspended.id}"' in page.text and "noindex" in page.text
    page = await client.get(f"/tutors/{pending.slug}")
    assert page.status_code == 200 and "not approved yet" in page.text and "Jazz piano" in page.text
    page = await client.get(f"/tutors/{banned.slug}")
    assert page.status_code == 200 and "The tutor is banned" in page.text


async def test_reviews_are_paginated_newest_first_with_the_tutors_reply_and_hidden_ones_left_out(client):
    tutor, profile = await approved_tutor()
    reviews = await add_reviews(tutor, 25, reply="Thank you, see you next week!")
    async with transaction() as session:
        from marketplace.db import utcnow
        from marketplace.reviews.models import Review

        hidden = await session.get(Review, reviews[24].id)
        hidden.hidden_at = utcnow()
    first = (await client.get(f"/tutors/{profile.slug}")).text
    numbers = [int(n) for n in re.findall(r"Review number (\d+)", first)]
    assert numbers == list(range(23, 13, -1))
    assert "Review number 24" not in first
    assert "Reply from Clara Klavier" in first and "Thank you, see you next week!" in first
    assert "Page 1 of 3" in first and f'href="/tutors/{profile.slug}?page=2#reviews"' in first
    last = (await client.get(f"/tutors/{profile.slug}?page=3")).text
    assert [int(n) for n in re.findall(r"Review number (\d+)", last)] == [3, 2, 1, 0]
    assert "Page 3 of 3" in last and "?page=2#reviews" in last
    beyond = (await client.get(f"/tutors/{profile.slug}?page=99")).text
    assert "Page 3 of 3" in beyond
    partial = await client.get(f"/tutors/{profile.slug}?page=2", headers={"HX-Request": "true", "HX-Target": "reviews"})
    assert partial.text.lstrip().startswith('<section id="reviews"') and "<html" not in partial.text
    assert [int(n) for n in re.findall(r"Review number (\d+)", partial.text)] == list(range(13, 3, -1))


async def test_the_profile_page_needs_the_same_number_of_statements_for_2_and_25_reviews(client):
    tutor, profile = await approved_tutor()
    await make_user(email="stu@example.com")
    await log_in(client, "stu@example.com", PASSWORD)
    await add_reviews(tutor, 2, reply="Thanks")
    await client.get(f"/tutors/{profile.slug}")  # warm caches
    with count_statements() as few:
        page = await client.get(f"/tutors/{profile.slug}")
    assert page.status_code == 200 and "Review number 1" in page.text
    await add_reviews(tutor, 23, start=2, reply="Thanks")
    with count_statements() as many:
        page = await client.get(f"/tutors/{profile.slug}")
    assert "Review number 24" in page.text
    assert len(many) == len(few), (len(few), len(many))


async def test_names_and_prices_follow_the_viewers_language(client):
    _tutor, profile = await approved_tutor()
    html = (await client.get(f"/tutors/{profile.slug}", headers={"Accept-Language": "de"})).text
    assert '<html lang="de">' in html
    assert "Deutsch, Englisch" in html and "Berlin, Deutschland" in html
    assert "45,00\u00a0€" in html
