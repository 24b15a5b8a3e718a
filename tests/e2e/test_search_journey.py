"""A student narrows the tutor search to piano + jazz + Spanish within 25 km of Madrid, sorts by
distance, copies the URL into a new page and gets the same results; the counts equal the API's;
every page passes axe."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.e2e.support import assert_accessible, run_sync
from tests.search import corpus as c

# Tutors around Madrid (and one far away): key, name, instruments, genres, languages, city.
TUTORS = [
    ("ana", "Ana Ruiz", ["piano"], ["jazz"], ["es", "en"], c.MADRID_CITY),  # 0 km
    ("luis", "Luis Gil", ["piano", "voice"], ["jazz", "pop"], ["es"], c.GETAFE),  # ~12 km
    ("sofia", "Sofía Mora", ["piano"], ["jazz", "classical"], ["es"], c.ALCALA),  # ~30 km: outside
    ("pablo", "Pablo Sanz", ["guitar"], ["jazz"], ["es"], c.MADRID_CITY),  # no piano
    ("eva", "Eva Lind", ["piano"], ["jazz"], ["en"], c.MADRID_CITY),  # no Spanish
    ("marc", "Marc Vidal", ["piano"], ["jazz"], ["es"], c.BARCELONA),  # far away
    ("rosa", "Rosa Díaz", ["piano"], ["classical"], ["es"], c.GETAFE),  # no jazz
]
EXPECTED = ["Ana Ruiz", "Luis Gil"]  # by distance from Madrid


def _index_tutors() -> None:
    async def work() -> None:
        from marketplace.accounts.models import Role, User
        from marketplace.db import transaction
        from marketplace.tutors.models import ProfileStatus, TutorProfile
        from search.sync import reindex_all

        async with transaction() as session:
            for key, name, instruments, genres, languages, city in TUTORS:
                user = User(
                    email=f"{key}-{uuid.uuid4().hex[:8]}@example.com",
                    password_hash="x",
                    display_name=name,
                    role=Role.tutor,
                    timezone="Europe/Madrid",
                    locale="en",
                )
                session.add(user)
                await session.flush()
                row = (
                    key,
                    name,
                    [(slug, ["beginner"]) for slug in instruments],
                    genres,
                    languages,
                    ["adults"],
                    True,
                    True,
                    city,
                    "EUR",
                    [(60, 4000)],
                    False,
                )
                live = c.live(row)
                session.add(
                    TutorProfile(
                        user_id=user.id,
                        slug=f"{key}-search",
                        status=ProfileStatus.approved,
                        draft=live,
                        live=live,
                        approved_at=datetime.now(UTC),
                    )
                )
        await reindex_all()

    run_sync(work)


def _names(page: Page) -> list[str]:
    return page.locator(".search-results .search-card-name a").all_inner_texts()


def _count(page: Page) -> int:
    text = page.locator(".search-count").inner_text()
    return int(re.search(r"\d+", text).group())


def _settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")


def test_student_narrows_sorts_and_shares_a_search(new_page):
    _index_tutors()
    page = new_page()
    page.goto("/tutors")
    expect(page.get_by_role("heading", name="Find a tutor")).to_be_visible()
    assert _count(page) == len(TUTORS)
    assert_accessible(page)

    for facet, value in (("instrument", "piano"), ("genre", "jazz"), ("language", "es")):
        box = page.locator(f'input[name="{facet}"][value="{value}"]')
        box.check()
        _settle(page)
        expect(page.locator(f'input[name="{facet}"][value="{value}"]')).to_be_checked()
    # piano + jazz + Spanish, anywhere: Ana, Luis, Sofía, Marc.
    expect(page.locator(".search-count")).to_have_text(re.compile(r"^4 "))

    page.locator("#f-city").fill("Madrid, ES")
    page.locator("#f-radius_km").select_option("25")
    page.locator("#f-sort").select_option("distance")
    _settle(page)
    page.get_by_role("button", name="Show tutors").click()
    _settle(page)
    expect(page.locator(".search-count")).to_have_text(re.compile(r"^2 "))
    assert _names(page) == EXPECTED
    assert_accessible(page)

    # The URL carries the whole search: a new page (another browser context) shows the same.
    url = page.url
    query = urlsplit(url).query
    for part in ("instrument=piano", "genre=jazz", "language=es", "radius_km=25", "sort=distance"):
        assert part in query, (part, query)
    shared = new_page()
    shared.goto(url)
    assert _names(shared) == EXPECTED and _count(shared) == 2
    expect(shared.locator('input[name="genre"][value="jazz"]')).to_be_checked()
    assert_accessible(shared)

    # The counts on the page are the API's for the same search (the API takes the city's id).
    api = shared.request.get(
        f"/api/v1/tutors?instrument=piano&genre=jazz&language=es&city={c.MADRID_CITY['geonameid']}"
        "&radius_km=25&sort=distance"
    )
    assert api.ok, api.text()
    body = api.json()
    assert body["total"] == _count(shared) == 2
    assert [h["name"] for h in body["hits"]] == EXPECTED
    assert body["hits"][0]["distance_km"] < body["hits"][1]["distance_km"] <= 25
    for facet in ("instrument", "genre", "language"):
        for value, count in body["facets"][facet].items():
            label = shared.locator(f'input[name="{facet}"][value="{value}"] + label .facet-count')
            expect(label).to_have_text(f"({count})")
