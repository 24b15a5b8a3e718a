"""The search page (/tutors) and the public search API (/api/v1/tutors, /api/v1/cities) through HTTP,
over the fixed corpus of tests/search/corpus.py indexed in the embedded SQL backend."""

from __future__ import annotations

import html
import re
import uuid

import pytest

from search.sql import SqlSearchBackend
from tests.search import corpus

HIT_KEYS = {
    "id",
    "slug",
    "name",
    "instruments",
    "genres",
    "languages",
    "city",
    "country",
    "price",
    "rating",
    "review_count",
    "distance_km",
}
MADRID_ID = 3117735


@pytest.fixture
async def indexed() -> None:
    """The corpus as approved profiles (their tutors, live documents) and in the search index."""
    from marketplace.accounts.models import Role, User
    from marketplace.db import transaction
    from marketplace.tutors.models import ProfileStatus, TutorProfile

    async with transaction() as session:
        for row in corpus.TUTORS:
            key = row[0]
            user_id = uuid.uuid5(uuid.NAMESPACE_URL, f"cadenza-search-test/user/{key}")
            session.add(
                User(
                    id=user_id,
                    email=f"{key}@example.com",
                    password_hash="x",
                    display_name=row[1],
                    role=Role.tutor,
                    timezone="UTC",
                    locale="en",
                )
            )
            await session.flush()
            session.add(
                TutorProfile(
                    id=corpus.profile_id(key),
                    user_id=user_id,
                    slug=key,
                    status=ProfileStatus.approved,
                    draft=corpus.live(row),
                    live=corpus.live(row),
                    approved_at=corpus.NOW,
                )
            )
    await SqlSearchBackend().index(corpus.corpus())


def slugs(body: dict) -> set[str]:
    return {hit["slug"] for hit in body["hits"]}


def unavailable_error():
    try:
        from search.meili import SearchUnavailable

        return SearchUnavailable()
    except ImportError:  # the Meilisearch adapter is not there yet: any AppError with status 503
        from marketplace.errors import AppError

        class Unavailable(AppError):
            status_code = 503

        return Unavailable("Search is temporarily unavailable.")


# ---- API ------------------------------------------------------------------------------------


async def test_api_returns_exactly_the_documented_shape(client, indexed):
    response = await client.get("/api/v1/tutors", params={"instrument": "piano", "sort": "rating"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"hits", "facets", "total", "page", "per_page"}
    assert set(body["facets"]) == {"instrument", "genre", "language", "format"}
    assert (body["total"], body["page"], body["per_page"]) == (3, 1, 20)
    assert all(set(hit) == HIT_KEYS for hit in body["hits"])
    anna = next(hit for hit in body["hits"] if hit["slug"] == "anna")
    assert anna == {
        "id": str(corpus.profile_id("anna")),
        "slug": "anna",
        "name": "Anna Müller",
        "instruments": ["piano"],
        "genres": ["jazz", "classical"],
        "languages": ["de", "en"],
        "city": "Berlin",
        "country": "DE",
        "price": {"amount": 4000, "currency": "EUR"},
        "rating": 4.8,
        "review_count": 10,
        "distance_km": None,
    }
    yuki = next(hit for hit in body["hits"] if hit["slug"] == "yuki")
    assert yuki["price"] == {"amount": 6400, "currency": "JPY"}  # the tutor's currency, minor units


async def test_api_facets_or_inside_and_across_with_disjunctive_counts(client, indexed):
    either = (await client.get("/api/v1/tutors?instrument=piano&instrument=guitar")).json()
    assert slugs(either) == {"anna", "jordi", "yuki", "jose"}

    both = (await client.get("/api/v1/tutors?instrument=piano&instrument=guitar&language=es")).json()
    assert slugs(both) == {"jordi", "jose"}

    piano = (await client.get("/api/v1/tutors?instrument=piano")).json()
    # the instrument counts ignore the instrument filter; the others apply it
    assert piano["facets"]["instrument"] == {
        "piano": 3,
        "voice": 2,
        "drums": 1,
        "guitar": 1,
        "saxophone": 1,
        "violin": 1,
    }
    assert piano["facets"]["language"] == {"en": 3, "de": 1, "es": 1, "ja": 1}
    assert piano["facets"]["format"] == {"online": 3, "in_person": 2}


async def test_api_city_implies_its_coordinates(client, indexed):
    near = (await client.get("/api/v1/tutors", params={"city": MADRID_ID, "sort": "distance"})).json()
    assert [hit["slug"] for hit in near["hits"]] == ["jose", "lucia"]
    assert near["hits"][0]["distance_km"] < 1 < near["hits"][1]["distance_km"]
    wider = (await client.get("/api/v1/tutors", params={"city": MADRID_ID, "radius_km": 50})).json()
    assert slugs(wider) == {"jose", "lucia", "marta"}


async def test_api_price_range_in_another_currency(client, indexed):
    body = (await client.get("/api/v1/tutors", params={"price_max": 40, "currency": "GBP"})).json()
    # 40 GBP is about 47 EUR: Anna (40 EUR), José (33.33), Lucía (35), Marta (25), Tom (34 GBP), Yuki (6400 JPY)
    assert slugs(body) == {"anna", "jose", "lucia", "marta", "tom", "yuki"}


@pytest.mark.parametrize(
    "params",
    [
        {"near": "40.4,-3.7", "radius_km": "-5"},
        {"near": "40.4,-3.7", "radius_km": "100000"},
        {"near": "40.4,-3.7", "radius_km": "nan"},
        {"radius_km": "10"},
        {"price_min": "-1"},
        {"price_max": "1e30"},
        {"price_min": "inf"},
        {"price_min": "50", "price_max": "10"},
        {"price_min": "ten"},
        {"near": "abc"},
        {"near": "91,0"},
        {"near": "1,2,3"},
        {"currency": "XXX", "price_min": "10"},
        {"currency": "XXX"},
        {"currency": "€"},
        {"per_page": "500"},
        {"per_page": "0"},
        {"page": "0"},
        {"page": "999999"},
        {"page": "abc"},
        {"sort": "distance"},
        {"sort": "cheapest"},
        {"city": "999999999"},
        {"city": "madrid"},
        {"instrument": "x" * 200},
    ],
)
async def test_api_bad_input_is_a_clear_json_4xx(client, indexed, params):
    response = await client.get("/api/v1/tutors", params=params)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) >= {"error", "detail", "status"}
    assert body["status"] == response.status_code
    assert body["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"instrument": "theremin"},
        {"q": "x" * 10_000},
        {"q": '"piano" AND NEAR(jazz, 2) OR * -guitar: ^ ~ \'" {}'},
        {"q": "piano", "page": "50"},
        {"language": "xx", "format": "hologram"},
    ],
)
async def test_api_odd_input_is_an_empty_or_normal_result(client, indexed, params):
    response = await client.get("/api/v1/tutors", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"hits", "facets", "total", "page", "per_page"}
    if "page" in params or "instrument" in params or "language" in params:
        assert body["hits"] == []


async def test_api_unavailable_backend_is_a_json_503(client, indexed, monkeypatch):
    async def fail(self, query):
        raise unavailable_error()

    monkeypatch.setattr(SqlSearchBackend, "search", fail)
    response = await client.get("/api/v1/tutors")
    assert response.status_code == 503
    assert response.json()["status"] == 503


async def test_openapi_documents_the_search_and_its_parameters(client):
    schema = (await client.get("/api/schema/openapi.json")).json()
    operation = schema["paths"]["/api/v1/tutors"]["get"]
    names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert names >= {
        "q",
        "instrument",
        "genre",
        "language",
        "level",
        "format",
        "city",
        "near",
        "radius_km",
        "price_min",
        "price_max",
        "currency",
        "online",
        "sort",
        "page",
        "per_page",
    }
    assert "/api/v1/cities" in schema["paths"]


async def test_city_autocomplete_api(client):
    cities = (await client.get("/api/v1/cities", params={"q": "madrid"})).json()
    assert 1 <= len(cities) <= 10
    assert cities[0] == {"id": MADRID_ID, "name": "Madrid", "country": "ES", "lat": pytest.approx(40.4165, abs=0.01),
                         "lng": pytest.approx(-3.70256, abs=0.01)}  # fmt: skip
    assert all(set(c) == {"id", "name", "country", "lat", "lng"} for c in cities)
    assert (await client.get("/api/v1/cities", params={"q": "m"})).json() == []
    assert len((await client.get("/api/v1/cities", params={"q": "san"})).json()) == 10


# ---- the page -------------------------------------------------------------------------------


async def test_page_without_javascript_renders_results_from_the_query_string(client, indexed):
    response = await client.get("/tutors?q=piano")
    assert response.status_code == 200
    text = response.text
    assert "<html" in text and 'id="search-form"' in text and 'method="get"' in text
    for name in ("Anna Müller", "Jordi Puig", "Yuki Tanaka"):
        assert name in text
    assert "José García" not in text
    assert 'href="/tutors/anna"' in text
    assert 'value="piano"' in text  # the text stays in the form


async def test_htmx_request_gets_only_the_results_partial(client, indexed):
    full = await client.get("/tutors?instrument=piano")
    partial = await client.get("/tutors?instrument=piano", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" in full.text and "<html" not in partial.text
    assert 'id="search-form"' not in partial.text
    assert "Anna Müller" in partial.text
    assert 'id="facet-instrument" hx-swap-oob="true"' in partial.text  # counts follow the results
    boosted = await client.get("/tutors?instrument=piano", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.text


async def test_page_facet_checkboxes_show_disjunctive_counts(client, indexed):
    text = (await client.get("/tutors?instrument=piano")).text
    count = r'<span class="facet-count">\((\d+)\)'
    piano = re.search(r'name="instrument" value="piano" checked>\s*<label[^>]*>Piano ' + count, text)
    guitar = re.search(r'name="instrument" value="guitar">\s*<label[^>]*>Guitar ' + count, text)
    assert piano and guitar and (piano.group(1), guitar.group(1)) == ("3", "1")
    assert 'hx-get="/tutors" hx-target="#results" hx-push-url="true"' in text
    assert 'hx-trigger="keyup changed delay:300ms, search"' in text


async def test_chips_remove_one_filter_each(client, indexed):
    text = html.unescape((await client.get("/tutors?instrument=piano&language=es&online=1")).text)
    assert 'href="/tutors?language=es&online=1"' in text  # without piano
    assert 'href="/tutors?instrument=piano&online=1"' in text  # without Spanish
    assert 'href="/tutors?instrument=piano&language=es"' in text  # without online only
    assert "Jordi Puig" in text and "Anna Müller" not in text


async def test_empty_result_suggests_the_filter_to_drop(client, indexed):
    response = await client.get("/tutors?instrument=saxophone&language=de")
    text = html.unescape(response.text)
    assert response.status_code == 200
    assert "No tutors match this search." in text
    assert "Remove “Instrument: Saxophone” to see 1 tutor." in text
    assert '<a href="/tutors?language=de">Remove this filter</a>' in text


async def test_prices_are_formatted_for_a_german_viewer(client, indexed):
    text = (await client.get("/tutors?instrument=piano", headers={"Accept-Language": "de-DE,de;q=0.9"})).text
    assert "40,00\xa0€" in text
    assert "Klavier" in text  # taxonomy names in the viewer's locale


async def test_page_bad_input_shows_a_message_not_a_500(client, indexed):
    response = await client.get("/tutors?price_min=50&price_max=10&instrument=piano")
    assert response.status_code == 422
    assert "The lowest price is higher than the highest price." in response.text
    assert 'value="piano" checked' in response.text  # the form comes back as it was
    partial = await client.get("/tutors?city=Qwxyzville", headers={"HX-Request": "true"})
    assert partial.status_code == 422 and "We do not know that city" in partial.text


async def test_page_city_by_name_and_pagination_links(client, indexed):
    text = html.unescape((await client.get("/tutors?city=Madrid,+ES&radius_km=50&sort=distance")).text)
    assert "José García" in text and "Marta Ruiz" in text and "Anna Müller" not in text
    assert 'value="Madrid, ES"' in text
    assert 'href="/tutors" aria-label="Remove filter: Within 50 km of Madrid"' in text  # one click drops the place
    many = html.unescape((await client.get("/tutors?page=1&q=")).text)
    assert "8 tutors found" in many and 'rel="next"' not in many


async def test_city_suggestions_partial(client):
    response = await client.get("/tutors/cities", params={"city": "madr"})
    assert response.status_code == 200
    assert '<option value="Madrid, ES">' in response.text
    assert "<html" not in response.text
    assert (await client.get("/tutors/cities", params={"q": "m"})).text.strip() == ""


async def test_unavailable_search_says_so_and_profiles_still_work(client, indexed, monkeypatch):
    async def fail(self, query):
        raise unavailable_error()

    monkeypatch.setattr(SqlSearchBackend, "search", fail)
    response = await client.get("/tutors?instrument=piano")
    assert response.status_code == 503
    assert "Search is temporarily unavailable" in response.text
    partial = await client.get("/tutors", headers={"HX-Request": "true"})
    assert "Search is temporarily unavailable" in partial.text
    assert (await client.get("/tutors/anna")).status_code == 200
