"""The search backend contract: every backend (SQL always, Meilisearch when MEILI_URL is set)
gives the same answers as a brute-force search over the same documents."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

import pytest

from marketplace.tutors.places import distance_km
from search.backend import MAX_Q_CHARS, SearchBackend, SearchQuery, SearchQueryError
from search.documents import FACETS
from tests.search.corpus import MADRID, RATES, brute_force, corpus, ids, price_in, profile_id


@pytest.fixture
async def indexed(backend: SearchBackend) -> SearchBackend:
    await backend.index(corpus())
    return backend


async def found(backend: SearchBackend, **kwargs) -> set[uuid.UUID]:
    result = await backend.search(SearchQuery(per_page=50, **kwargs))
    assert result.total == len(result.hits)
    return {hit.profile_id for hit in result.hits}


# ---- indexing ------------------------------------------------------------------------------


async def test_index_counts_replaces_and_deletes_documents(backend: SearchBackend):
    docs = corpus()
    assert await backend.count() == 0
    await backend.index(docs)
    assert await backend.count() == len(docs)

    renamed = dataclasses.replace(docs[0], name="Anna Zimmermann", text="anna zimmermann piano jazz")
    await backend.index([renamed])
    assert await backend.count() == len(docs)
    assert await found(backend, q="zimmermann") == ids("anna")
    assert await found(backend, q="muller") == set()

    await backend.delete([profile_id("anna"), profile_id("tom"), uuid.uuid4()])
    assert await backend.count() == len(docs) - 2
    result = await backend.search(SearchQuery(per_page=50))
    assert "DE" not in result.facets["country"] and "GB" not in result.facets["country"]
    await backend.delete([])
    await backend.index([])


# ---- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("muller", {"anna"}),
        ("Müller", {"anna"}),
        ("MULLER", {"anna"}),
        ("jose", {"jose"}),
        ("José García", {"jose"}),
        ("lucia perez", {"lucia"}),
        ("pia", {"anna", "jordi", "yuki"}),
        ("piano", {"anna", "jordi", "yuki"}),
        ("jazz pia", {"anna"}),
        ("flamenco", {"jose"}),
        ("alcala", {"marta"}),
        ("zzzz", set()),
    ],
)
async def test_text_search_folds_diacritics_and_matches_prefixes(indexed: SearchBackend, q: str, expected: set[str]):
    assert await found(indexed, q=q) == ids(*expected)


async def test_relevance_ranks_name_matches_first(indexed: SearchBackend):
    # "anna" is Anna's name; nobody else has it in their text at all, so she is the only hit.
    result = await indexed.search(SearchQuery(q="anna", sort="relevance"))
    assert [h.profile_id for h in result.hits] == [profile_id("anna")]


@pytest.mark.parametrize(
    "q",
    [
        '"',
        "AND",
        "NEAR(",
        "*",
        "-",
        ":",
        "piano AND",
        '"piano',
        "pia*",
        "NOT jazz",
        "piano -jazz",
        "name:piano",
        "a:b",
        "(",
        ")",
        "'",
        "\\",
        "^",
        "%",
        "_",
        "OR OR",
        "NEAR(piano jazz, 2)",
        "{name text}: piano",
        "piano & jazz | !rock <-> x:*",
        "'; DROP TABLE search_documents; --",
        "\x00",
        "🎹",
    ],
)
async def test_query_syntax_in_q_never_errors(indexed: SearchBackend, q: str):
    result = await indexed.search(SearchQuery(q=q))
    assert result.total >= 0
    assert await indexed.count() == len(corpus())


async def test_very_long_queries_are_truncated_cleanly(indexed: SearchBackend):
    for q in ("x" * 10_000, "piano " * 2_000, "ü" * 10_000):
        query = SearchQuery(q=q)
        assert len(query.q) <= MAX_Q_CHARS
        await indexed.search(query)
    assert await found(indexed, q="piano " * 2_000) == ids("anna", "jordi", "yuki")


# ---- facets --------------------------------------------------------------------------------


async def test_or_within_a_facet_and_across_facets(indexed: SearchBackend):
    assert await found(indexed, filters={"instrument": ["piano"]}) == ids("anna", "jordi", "yuki")
    assert await found(indexed, filters={"instrument": ["piano", "guitar"]}) == ids("anna", "jordi", "yuki", "jose")
    assert await found(indexed, filters={"instrument": ["piano", "guitar"], "language": ["es"]}) == ids("jordi", "jose")
    assert await found(indexed, filters={"instrument": ["piano"], "genre": ["jazz"], "country": ["DE"]}) == ids("anna")
    assert await found(indexed, filters={"format": ["in_person"], "city": ["3117735", "3121960"]}) == ids(
        "jose", "lucia"
    )
    assert await found(indexed, filters={"instrument": ["banjo"]}) == set()
    assert await found(indexed, online_only=True) == ids("anna", "lucia", "jordi", "tom", "yuki", "mia")


QUERIES = [
    {},
    {"filters": {"instrument": ["piano"]}},
    {"filters": {"instrument": ["piano", "guitar"], "language": ["es"]}},
    {"q": "jazz", "filters": {"country": ["ES", "DE"]}},
    {"filters": {"instrument": ["piano"], "genre": ["jazz", "classical"], "level": ["beginner"]}},
    {"price_min": 3000, "price_max": 4500, "rates": RATES, "online_only": True, "filters": {"age_group": ["adults"]}},
    {"near": MADRID, "radius_km": 450, "filters": {"format": ["in_person"], "genre": ["jazz", "rock"]}},
    {"q": "a", "filters": {"format": ["online"], "language": ["en"], "instrument": ["voice", "drums"]}},
    {"filters": {"city": ["0"]}},
    # More than half of the documents match: the SQL backend counts the complement (NULL prices included).
    {"online_only": True},
    {"price_max": 100000, "rates": RATES},
    {"price_max": 100000, "rates": RATES, "filters": {"language": ["en"]}},
]


@pytest.mark.parametrize("params", QUERIES)
async def test_disjunctive_facet_counts_equal_a_brute_force_count(indexed: SearchBackend, params: dict):
    query = SearchQuery(per_page=50, **params)
    result = await indexed.search(query)
    expected_ids, expected_facets = brute_force(corpus(), query)
    assert {h.profile_id for h in result.hits} == expected_ids
    assert result.total == len(expected_ids)
    assert set(result.facets) == set(FACETS)
    assert {f: counts for f, counts in result.facets.items() if counts} == {
        f: counts for f, counts in expected_facets.items() if counts
    }


async def test_a_selected_facet_still_counts_its_other_values(indexed: SearchBackend):
    result = await indexed.search(SearchQuery(filters={"instrument": ["piano"]}))
    assert result.facets["instrument"]["guitar"] == 1  # the user may widen to "piano or guitar"
    assert result.facets["country"] == {"DE": 1, "ES": 1, "JP": 1}


# ---- price ---------------------------------------------------------------------------------


async def test_price_range_converts_currencies_with_the_rates(indexed: SearchBackend):
    # 40 EUR: Anna (EUR 40), Tom (GBP 34 at 0.85) and Yuki (JPY 6,400 at 160).
    assert await found(indexed, price_min=3800, price_max=4200, rates=RATES) == ids("anna", "tom", "yuki")
    # At most 40 USD = 37.04 EUR: José (33.33 for an hour from 50 per 90 minutes), Lucía, Marta.
    assert await found(indexed, price_max=4000, currency="USD", rates=RATES) == ids("jose", "lucia", "marta")
    # Yen has no minor unit: 6,400 JPY is the bound itself.
    assert await found(indexed, price_min=6400, price_max=6400, currency="JPY", rates=RATES) == ids(
        "anna", "tom", "yuki"
    )
    # Without a rate a tutor's price cannot be compared, so a price filter leaves them out.
    assert profile_id("mia") not in await found(indexed, price_min=0, rates={"EUR": Decimal(1)})
    assert profile_id("mia") in await found(indexed, price_min=0, rates=RATES)


# ---- geography -----------------------------------------------------------------------------


async def test_radius_search_around_madrid(indexed: SearchBackend):
    assert await found(indexed, near=MADRID, radius_km=25) == ids("jose", "lucia")  # Madrid, Getafe
    assert await found(indexed, near=MADRID, radius_km=40) == ids("jose", "lucia", "marta")  # + Alcalá
    assert profile_id("jordi") not in await found(indexed, near=MADRID, radius_km=500)  # Barcelona is 504 km away
    assert await found(indexed, near=(41.0, 1.0), radius_km=150) == ids("jordi")


async def test_distance_sort_and_distances(indexed: SearchBackend):
    result = await indexed.search(SearchQuery(near=MADRID, radius_km=100, sort="distance"))
    assert [h.profile_id for h in result.hits] == [profile_id(k) for k in ("jose", "lucia", "marta")]
    distances = [h.distance_km for h in result.hits]
    assert distances[0] == pytest.approx(0, abs=0.01)
    assert distances[1] == pytest.approx(distance_km(*MADRID, 40.30571, -3.73295), abs=0.01)
    assert distances == sorted(distances)
    # Without ``near`` there is no distance.
    assert all(h.distance_km is None for h in (await indexed.search(SearchQuery())).hits)


# ---- sorts and pages -----------------------------------------------------------------------


async def test_sort_by_rating(indexed: SearchBackend):
    result = await indexed.search(SearchQuery(sort="rating", per_page=50))
    docs = {d.profile_id: d for d in corpus()}
    expected = sorted(
        docs.values(), key=lambda d: (d.rating is None, -(d.rating or 0), -d.review_count, -d.lessons_taught)
    )
    assert [h.profile_id for h in result.hits] == [d.profile_id for d in expected]
    assert [h.rating for h in result.hits][:2] == [5.0, 5.0]


@pytest.mark.parametrize("sort", ["price_asc", "price_desc"])
async def test_sort_by_price_compares_across_currencies(indexed: SearchBackend, sort: str):
    query = SearchQuery(sort=sort, rates=RATES, per_page=50)
    result = await indexed.search(query)
    docs = {d.profile_id: d for d in corpus()}
    prices = [price_in(docs[h.profile_id], query) for h in result.hits]
    assert None not in prices and len(prices) == len(docs)
    ordered = sorted(prices, reverse=sort == "price_desc")
    assert [round(p, 6) for p in prices] == [round(p, 6) for p in ordered]
    assert result.hits[0].profile_id == profile_id("marta" if sort == "price_asc" else "mia")


async def test_sort_by_newest(indexed: SearchBackend):
    result = await indexed.search(SearchQuery(sort="newest", per_page=50))
    keys = ["lucia", "jordi", "mia", "jose", "marta", "anna", "tom", "yuki"]
    assert [h.profile_id for h in result.hits] == [profile_id(k) for k in keys]


async def test_pagination_covers_everything_once_and_pages_past_the_end_are_empty(indexed: SearchBackend):
    seen = []
    for page in (1, 2, 3):
        result = await indexed.search(SearchQuery(sort="newest", page=page, per_page=3))
        assert result.total == 8 and result.page == page and result.pages == 3
        seen += [h.profile_id for h in result.hits]
    assert len(seen) == len(set(seen)) == 8
    beyond = await indexed.search(SearchQuery(sort="newest", page=4, per_page=3))
    assert beyond.hits == [] and beyond.total == 8
    far = await indexed.search(SearchQuery(page=1000, per_page=50))
    assert far.hits == [] and far.total == 8


# ---- refused input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "cheapest"}, "unknown_sort"),
        ({"sort": "distance"}, "distance_without_location"),
        ({"per_page": 51}, "bad_per_page"),
        ({"per_page": 0}, "bad_per_page"),
        ({"per_page": True}, "bad_per_page"),
        ({"page": 0}, "bad_page"),
        ({"page": 10**9}, "bad_page"),
        ({"page": "2"}, "bad_page"),
        ({"near": MADRID, "radius_km": -5}, "bad_radius"),
        ({"near": MADRID, "radius_km": 0}, "bad_radius"),
        ({"near": MADRID, "radius_km": 100_000}, "bad_radius"),
        ({"near": MADRID, "radius_km": float("nan")}, "bad_radius"),
        ({"near": MADRID, "radius_km": "25"}, "bad_radius"),
        ({"radius_km": 25}, "radius_without_location"),
        ({"near": (200, 0)}, "bad_location"),
        ({"near": (0, -181)}, "bad_location"),
        ({"near": ("north", "west")}, "bad_location"),
        ({"near": (float("inf"), 0)}, "bad_location"),
        ({"near": (1, 2, 3)}, "bad_location"),
        ({"price_min": -1}, "bad_price"),
        ({"price_max": 10**12}, "bad_price"),
        ({"price_min": "10"}, "bad_price"),
        ({"price_min": 1.5}, "bad_price"),
        ({"price_min": 500, "price_max": 100}, "price_range_inverted"),
        ({"price_min": 100, "currency": "CHF", "rates": RATES}, "unknown_currency"),
        ({"currency": "eur"}, "bad_currency"),
        ({"rates": {"GBP": Decimal(0)}}, "bad_rate"),
        ({"rates": {"GBP": "abc"}}, "bad_rate"),
        ({"rates": {"gbp": Decimal(1)}}, "bad_rate"),
        ({"filters": {"colour": ["red"]}}, "unknown_facet"),
        ({"filters": {"instrument": "piano"}}, "bad_facet_values"),
        ({"filters": {"instrument": ["x" * 100]}}, "bad_facet_value"),
        ({"filters": {"instrument": [""]}}, "bad_facet_value"),
        ({"filters": {"instrument": [3]}}, "bad_facet_value"),
        ({"filters": {"instrument": [f"i{n}" for n in range(51)]}}, "too_many_values"),
        ({"filters": ["instrument"]}, "bad_filters"),
        ({"q": None}, "bad_query"),
        ({"online_only": "yes"}, "bad_online_only"),
    ],
)
def test_bad_input_is_refused_with_a_code(params: dict, code: str):
    with pytest.raises(SearchQueryError) as caught:
        SearchQuery(**params)
    assert caught.value.code == code
