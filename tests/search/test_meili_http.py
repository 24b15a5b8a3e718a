"""The Meilisearch backend at its HTTP boundary: every request it sends and how it reads the answers,
against an in-memory stand-in (``httpx.MockTransport``) that answers in Meilisearch's documented
shapes. No network: the real engine is exercised by the contract suite when MEILI_URL is set."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from marketplace.tutors.places import distance_km
from search.backend import SearchQuery
from search.documents import FACETS
from search.meili import MeiliError, MeiliSearchBackend, SearchUnavailable, desired_settings
from tests.search.corpus import MADRID, RATES, corpus, profile_id

URL = "http://meili.test:7700"
QUALITY = ["rating:desc", "review_count:desc", "lessons_taught:desc", "id:asc"]
RETRIEVED = [
    "id",
    "slug",
    "name",
    "headline",
    "price_minor",
    "currency",
    "rating",
    "review_count",
    "lessons_taught",
    "trial",
    "online",
    "in_person",
    "country_code",
    "city_id",
    "_geo",
]
# What GET /indexes/{uid}/settings answers for a new index (Meilisearch 1.x defaults).
DEFAULT_SETTINGS: dict[str, Any] = {
    "displayedAttributes": ["*"],
    "searchableAttributes": ["*"],
    "filterableAttributes": [],
    "sortableAttributes": [],
    "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"],
    "stopWords": [],
    "nonSeparatorTokens": [],
    "separatorTokens": [],
    "dictionary": [],
    "synonyms": {},
    "distinctAttribute": None,
    "proximityPrecision": "byWord",
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
        "disableOnWords": [],
        "disableOnAttributes": [],
    },
    "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
    "pagination": {"maxTotalHits": 1000},
    "searchCutoffMs": None,
}
EXPECTED_SETTINGS = {
    "searchableAttributes": ["name", "headline", "text"],
    "filterableAttributes": [
        "instrument",
        "genre",
        "language",
        "level",
        "age_group",
        "format",
        "country",
        "city",
        "price_minor",
        "currency",
        "online",
        "_geo",
        "availability",
    ],
    "sortableAttributes": ["rating", "review_count", "lessons_taught", "price_eur_minor", "newest", "_geo", "id"],
    "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"],
    "faceting": {"maxValuesPerFacet": 1000, "sortFacetValuesBy": {"*": "count"}},
    "pagination": {"maxTotalHits": 10000},
    "typoTolerance": {"enabled": True},
}


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for key, value in changes.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: Any


class FakeMeili:
    """Meilisearch's documented endpoints, in memory; every request is recorded in ``calls``."""

    def __init__(self, settings: dict[str, Any] | None = None, *, polls_before_done: int = 1) -> None:
        self.settings = settings  # None: the index does not exist yet
        self.calls: list[Call] = []
        self.tasks: dict[int, dict[str, Any]] = {}
        self.polls: dict[int, int] = {}
        self.polls_before_done = polls_before_done
        self.fail_next_task: dict[str, str] | None = None
        self.documents = 0
        self.search_results: list[dict[str, Any]] | None = None
        self.transport = httpx.MockTransport(self.handle)

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET" and c.path != "/multi-search"]

    def queries(self) -> list[dict[str, Any]]:
        (call,) = [c for c in self.calls if c.path == "/multi-search"]
        return call.body["queries"]

    def _task(self, index_uid: str, kind: str) -> httpx.Response:
        uid = len(self.tasks)
        status = "failed" if self.fail_next_task else "succeeded"
        self.tasks[uid] = {"uid": uid, "indexUid": index_uid, "type": kind, "status": status}
        if self.fail_next_task:
            self.tasks[uid]["error"] = self.fail_next_task
            self.fail_next_task = None
        body = {"taskUid": uid, "indexUid": index_uid, "status": "enqueued", "type": kind, "enqueuedAt": "x"}
        return httpx.Response(202, json=body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path, method = request.url.path, request.method
        self.calls.append(Call(method, path, dict(request.url.params), body))
        if path.startswith("/tasks/"):
            uid = int(path.rsplit("/", 1)[1])
            self.polls[uid] = self.polls.get(uid, 0) + 1
            task = dict(self.tasks[uid])
            if self.polls[uid] <= self.polls_before_done:
                task["status"] = "processing"
            return httpx.Response(200, json=task)
        if path == "/indexes" and method == "POST":
            self.settings = dict(DEFAULT_SETTINGS)
            return self._task(body["uid"], "indexCreation")
        if path == "/multi-search":
            results = self.search_results or [
                {"indexUid": q["indexUid"], "hits": [], "query": q["q"], "processingTimeMs": 0, "totalHits": 0}
                for q in body["queries"]
            ]
            return httpx.Response(200, json={"results": results})
        index_uid, rest = path.removeprefix("/indexes/").split("/", 1)
        if self.settings is None:
            error = {"message": f"Index `{index_uid}` not found.", "code": "index_not_found", "type": "invalid_request"}
            return httpx.Response(404, json=error)
        if rest == "settings" and method == "GET":
            return httpx.Response(200, json=self.settings)
        if rest == "settings" and method == "PATCH":
            self.settings = merged(self.settings, body)
            return self._task(index_uid, "settingsUpdate")
        if rest == "documents" and method == "POST":
            self.documents += len(body)
            return self._task(index_uid, "documentAdditionOrUpdate")
        if rest == "documents/delete-batch":
            return self._task(index_uid, "documentDeletion")
        if rest == "documents" and method == "DELETE":
            return self._task(index_uid, "documentDeletion")
        if rest == "stats":
            return httpx.Response(200, json={"numberOfDocuments": self.documents, "isIndexing": False})
        return httpx.Response(404, json={"message": "unknown route", "code": "not_found"})


def ready_settings() -> dict[str, Any]:
    return merged(DEFAULT_SETTINGS, desired_settings())


def backend_for(fake: FakeMeili, **kwargs: Any) -> MeiliSearchBackend:
    return MeiliSearchBackend(URL, "tutors", transport=fake.transport, task_timeout=5, **kwargs)


async def sent_queries(query: SearchQuery) -> list[dict[str, Any]]:
    fake = FakeMeili(ready_settings())
    await backend_for(fake).search(query)
    return fake.queries()


def main_query(**changes: Any) -> dict[str, Any]:
    body = {
        "indexUid": "tutors",
        "q": "",
        "matchingStrategy": "all",
        "page": 1,
        "hitsPerPage": 20,
        "sort": QUALITY,
        "facets": list(FACETS),
        "attributesToRetrieve": RETRIEVED,
        "showRankingScore": False,
    }
    body.update(changes)
    return body


def facet_query(facet: str, filter_: str | None, q: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"indexUid": "tutors", "q": q, "matchingStrategy": "all", "limit": 0, "facets": [facet]}
    if filter_ is not None:
        body["filter"] = filter_
    return body


# ---- settings ------------------------------------------------------------------------------


async def test_ensure_settings_creates_the_index_and_sends_the_exact_settings():
    fake = FakeMeili(settings=None)
    changes = await backend_for(fake).ensure_settings()

    assert [(c.method, c.path) for c in fake.calls] == [
        ("GET", "/indexes/tutors/settings"),
        ("POST", "/indexes"),
        ("GET", "/tasks/0"),
        ("GET", "/tasks/0"),  # first "processing", then "succeeded"
        ("GET", "/indexes/tutors/settings"),
        ("PATCH", "/indexes/tutors/settings"),
        ("GET", "/tasks/1"),
        ("GET", "/tasks/1"),
    ]
    assert fake.calls[1].body == {"uid": "tutors", "primaryKey": "id"}
    # Only what differs from a new index's defaults: the ranking rules and typo tolerance already match.
    expected = {k: v for k, v in EXPECTED_SETTINGS.items() if k not in ("rankingRules", "typoTolerance")}
    assert fake.calls[5].body == expected == changes
    assert desired_settings() == EXPECTED_SETTINGS


async def test_ensure_settings_is_idempotent():
    fake = FakeMeili(settings=None)
    await backend_for(fake).ensure_settings()
    fake.calls.clear()

    assert await backend_for(fake).ensure_settings() == {}
    assert [(c.method, c.path) for c in fake.calls] == [("GET", "/indexes/tutors/settings")]


async def test_ensure_settings_patches_only_the_differences():
    current = ready_settings()
    current["filterableAttributes"] = sorted(current["filterableAttributes"])  # order is irrelevant for sets
    current["pagination"] = {"maxTotalHits": 1000}
    fake = FakeMeili(current)
    await backend_for(fake).ensure_settings()
    (patch,) = [c for c in fake.calls if c.method == "PATCH"]
    assert patch.body == {"pagination": {"maxTotalHits": 10000}}


async def test_settings_are_ensured_once_per_backend_before_other_calls():
    fake = FakeMeili(ready_settings())
    backend = backend_for(fake)
    await backend.count()
    await backend.count()
    assert [c.path for c in fake.calls] == [
        "/indexes/tutors/settings",
        "/indexes/tutors/stats",
        "/indexes/tutors/stats",
    ]


# ---- documents -----------------------------------------------------------------------------


async def test_index_sends_the_documents_and_waits_for_the_task():
    fake = FakeMeili(ready_settings())
    docs = corpus()
    await backend_for(fake, rates=RATES).index([*docs, docs[0]])  # a duplicate is sent once

    calls = [(c.method, c.path) for c in fake.calls]
    assert calls == [
        ("GET", "/indexes/tutors/settings"),
        ("POST", "/indexes/tutors/documents"),
        ("GET", "/tasks/0"),
        ("GET", "/tasks/0"),
    ]
    sent = fake.calls[1]
    assert sent.params == {"primaryKey": "id"}
    assert len(sent.body) == len(docs)
    by_id = {d["id"]: d for d in sent.body}
    anna = by_id[str(profile_id("anna"))]
    assert anna == {
        "id": str(profile_id("anna")),
        "user_id": str(docs[0].user_id),
        "slug": "anna",
        "name": "Anna Müller",
        "headline": "Piano lessons with Anna",
        "text": docs[0].text,
        "currency": "EUR",
        "review_count": 10,
        "lessons_taught": 120,
        "trial": True,
        "online": True,
        "in_person": True,
        "availability": [],
        "instrument": ["piano"],
        "genre": ["jazz", "classical"],
        "language": ["de", "en"],
        "level": ["beginner", "intermediate"],
        "age_group": ["adults", "teens"],
        "format": ["online", "in_person"],
        "country": ["DE"],
        "city": ["2950159"],
        "price_minor": 4000,
        "price_eur_minor": 4000.0,
        "rating": 4.8,
        "country_code": "DE",
        "city_id": 2950159,
        "newest": docs[0].newest.timestamp(),
        "_geo": {"lat": 52.52437, "lng": 13.41053},
    }
    tom, yuki = by_id[str(profile_id("tom"))], by_id[str(profile_id("yuki"))]
    assert tom["price_eur_minor"] == pytest.approx(4000)  # GBP 34.00 at 0.85
    assert yuki["price_eur_minor"] == pytest.approx(4000)  # JPY 6,400 at 160
    mia, lucia = by_id[str(profile_id("mia"))], by_id[str(profile_id("lucia"))]
    assert "_geo" not in mia and mia["country"] == [] and mia["city"] == []  # no city
    assert "rating" not in lucia  # no reviews: left out, so it sorts last


async def test_index_without_a_rate_leaves_out_the_eur_price():
    fake = FakeMeili(ready_settings())
    await backend_for(fake).index(corpus())  # only EUR is known
    by_id = {d["id"]: d for d in fake.calls[1].body}
    assert by_id[str(profile_id("anna"))]["price_eur_minor"] == 4000.0
    assert "price_eur_minor" not in by_id[str(profile_id("tom"))]


async def test_a_failed_task_raises():
    fake = FakeMeili(ready_settings())
    fake.fail_next_task = {"code": "invalid_document_geo_field", "message": "bad _geo", "type": "invalid_request"}
    with pytest.raises(MeiliError) as caught:
        await backend_for(fake).index(corpus()[:1])
    assert caught.value.code == "invalid_document_geo_field"
    assert not isinstance(caught.value, SearchUnavailable)


async def test_delete_clear_and_count():
    fake = FakeMeili(ready_settings())
    backend = backend_for(fake)
    await backend.index(corpus())
    fake.calls.clear()

    await backend.delete([profile_id("anna"), profile_id("tom"), profile_id("anna")])
    await backend.delete([])
    await backend.index([])
    assert [(c.method, c.path) for c in fake.calls] == [
        ("POST", "/indexes/tutors/documents/delete-batch"),
        ("GET", "/tasks/1"),
        ("GET", "/tasks/1"),
    ]
    assert fake.calls[0].body == [str(profile_id("anna")), str(profile_id("tom"))]

    fake.calls.clear()
    await backend.clear()
    assert [(c.method, c.path) for c in fake.calls] == [
        ("DELETE", "/indexes/tutors/documents"),
        ("GET", "/tasks/2"),
        ("GET", "/tasks/2"),
    ]
    assert await backend.count() == 8


async def test_task_waiting_is_bounded():
    fake = FakeMeili(ready_settings(), polls_before_done=10**6)  # never finishes
    backend = MeiliSearchBackend(URL, transport=fake.transport, task_timeout=0.05)
    with pytest.raises(SearchUnavailable):
        await backend.index(corpus()[:1])


# ---- search translation --------------------------------------------------------------------


async def test_text_only():
    assert await sent_queries(SearchQuery(q='  José "García" AND -x  ')) == [main_query(q="jose garcia and x")]


async def test_no_query_at_all():
    assert await sent_queries(SearchQuery()) == [main_query()]


async def test_three_facets_or_inside_and_across_with_one_disjunctive_query_per_filtered_facet():
    query = SearchQuery(
        q="jazz", filters={"instrument": ["piano", "violin"], "language": ["es"], "country": ["ES", "DE"]}
    )
    instrument = '(instrument = "piano" OR instrument = "violin")'
    language = '(language = "es")'
    country = '(country = "ES" OR country = "DE")'
    assert await sent_queries(query) == [
        main_query(
            q="jazz",
            facets=["genre", "level", "age_group", "format", "city"],
            filter=f"{instrument} AND {language} AND {country}",
        ),
        facet_query("instrument", f"{language} AND {country}", q="jazz"),
        facet_query("language", f"{instrument} AND {country}", q="jazz"),
        facet_query("country", f"{instrument} AND {language}", q="jazz"),
    ]


async def test_one_facet_alone_has_an_unfiltered_disjunctive_query():
    queries = await sent_queries(SearchQuery(filters={"genre": ["jazz"]}))
    assert queries[1] == facet_query("genre", None)
    assert "filter" not in queries[1]


async def test_geo_radius_sorted_by_distance():
    queries = await sent_queries(SearchQuery(near=MADRID, radius_km=25, sort="distance"))
    assert queries == [
        main_query(filter="_geoRadius(40.4168, -3.7038, 25000)", sort=["_geoPoint(40.4168,-3.7038):asc", "id:asc"])
    ]


async def test_geo_radius_default_and_other_sorts():
    (query,) = await sent_queries(SearchQuery(near=(0.00001, -0.0), sort="newest"))
    assert query["filter"] == "_geoRadius(0.00001, 0, 25000)"
    assert query["sort"] == ["newest:desc", "id:asc"]


async def test_price_range_in_usd_is_converted_per_currency_with_the_rates():
    query = SearchQuery(price_min=3000, price_max=4500, currency="USD", rates=RATES)
    (sent,) = await sent_queries(query)
    assert sent["filter"] == (
        '((currency = "EUR" AND price_minor >= 2778 AND price_minor <= 4166)'
        ' OR (currency = "GBP" AND price_minor >= 2362 AND price_minor <= 3541)'
        ' OR (currency = "JPY" AND price_minor >= 4445 AND price_minor <= 6666)'
        ' OR (currency = "USD" AND price_minor >= 3000 AND price_minor <= 4500))'
    )


async def test_open_price_range_and_unknown_currencies_are_left_out():
    (sent,) = await sent_queries(SearchQuery(price_min=1000))
    assert sent["filter"] == '((currency = "EUR" AND price_minor >= 1000))'


async def test_online_only_combined_with_a_facet():
    queries = await sent_queries(SearchQuery(online_only=True, filters={"level": ["beginner"]}))
    assert queries[0]["filter"] == '(level = "beginner") AND online = true'
    assert queries[1] == facet_query("level", "online = true")


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("relevance", QUALITY),
        ("rating", QUALITY),
        ("price_asc", ["price_eur_minor:asc", "id:asc"]),
        ("price_desc", ["price_eur_minor:desc", "id:asc"]),
        ("newest", ["newest:desc", "id:asc"]),
        ("distance", ["_geoPoint(40.4168,-3.7038):asc", "id:asc"]),
    ],
)
async def test_every_sort(sort: str, expected: list[str]):
    (sent,) = await sent_queries(SearchQuery(sort=sort, near=MADRID))
    assert sent["sort"] == expected


async def test_pagination():
    (sent,) = await sent_queries(SearchQuery(page=3, per_page=7))
    assert (sent["page"], sent["hitsPerPage"]) == (3, 7)
    assert "limit" not in sent and "offset" not in sent


async def test_quotes_and_backslashes_in_values_stay_literal():
    query = SearchQuery(filters={"instrument": ['piano" OR 1=1', "back\\slash"], "city": ['") OR (city = "1']})
    queries = await sent_queries(query)
    instrument = r'(instrument = "piano\" OR 1=1" OR instrument = "back\\slash")'
    city = r'(city = "\") OR (city = \"1")'
    assert queries[0]["filter"] == f"{instrument} AND {city}"
    assert queries[1]["filter"] == city
    assert queries[2]["filter"] == instrument


# ---- reading answers -----------------------------------------------------------------------


def hit(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(profile_id(key)),
        "slug": key,
        "name": key.title(),
        "headline": f"Lessons with {key.title()}",
        "price_minor": 3500,
        "currency": "EUR",
        "review_count": 0,
        "lessons_taught": 0,
        "trial": False,
        "online": True,
        "in_person": True,
        "country_code": "ES",
        "city_id": 3121960,
        **extra,
    }


async def test_facets_are_merged_from_the_right_queries_and_hits_are_read():
    fake = FakeMeili(ready_settings())
    fake.search_results = [
        {
            "indexUid": "tutors",
            "hits": [
                hit("jose", _geo={"lat": 40.4168, "lng": -3.7038}, _geoDistance=0, rating=5.0),
                hit("lucia", _geo={"lat": 40.30571, "lng": -3.73295}, _geoDistance=12597),
            ],
            "query": "",
            "processingTimeMs": 1,
            "hitsPerPage": 20,
            "page": 1,
            "totalPages": 1,
            "totalHits": 2,
            "facetDistribution": {
                "instrument": {"guitar": 1, "violin": 1},  # filtered: must be ignored here
                "genre": {"flamenco": 1, "classical": 1},
                "country": {"ES": 2},
                "city": {"3117735": 1, "3121960": 1},
            },
            "facetStats": {},
        },
        {
            "indexUid": "tutors",
            "hits": [],
            "estimatedTotalHits": 5,
            "facetDistribution": {"instrument": {"guitar": 1, "violin": 1, "piano": 3, "saxophone": 1}},
        },
        {
            "indexUid": "tutors",
            "hits": [],
            "estimatedTotalHits": 4,
            "facetDistribution": {"format": {"in_person": 3, "online": 1}},
        },
    ]
    query = SearchQuery(
        near=MADRID, sort="distance", filters={"instrument": ["guitar", "violin"], "format": ["online"]}
    )
    result = await backend_for(fake).search(query)

    assert result.total == 2 and result.page == 1 and result.per_page == 20
    assert result.facets == {
        "instrument": {"piano": 3, "guitar": 1, "saxophone": 1, "violin": 1},
        "genre": {"classical": 1, "flamenco": 1},
        "language": {},
        "level": {},
        "age_group": {},
        "format": {"in_person": 3, "online": 1},
        "country": {"ES": 2},
        "city": {"3117735": 1, "3121960": 1},
    }
    jose, lucia = result.hits
    assert jose.profile_id == profile_id("jose") and jose.rating == 5.0 and jose.distance_km == 0
    assert lucia.distance_km == 12.597 and lucia.rating is None
    assert (lucia.country, lucia.city_id, lucia.price_minor, lucia.currency) == ("ES", 3121960, 3500, "EUR")


async def test_distance_falls_back_to_the_location_and_is_none_without_near():
    fake = FakeMeili(ready_settings())
    fake.search_results = [{"hits": [hit("lucia", _geo={"lat": 40.30571, "lng": -3.73295})], "totalHits": 1}]
    (near,) = (await backend_for(fake).search(SearchQuery(near=MADRID))).hits
    assert near.distance_km == round(distance_km(*MADRID, 40.30571, -3.73295), 3) == 12.597
    (far,) = (await backend_for(fake).search(SearchQuery())).hits
    assert far.distance_km is None


# ---- failures ------------------------------------------------------------------------------


def failing(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    "transport",
    [
        failing(httpx.ConnectError("Connection refused")),
        failing(httpx.ConnectTimeout("timed out")),
        failing(httpx.ReadTimeout("timed out")),
        failing(httpx.RemoteProtocolError("peer closed connection")),
        httpx.MockTransport(lambda r: httpx.Response(500, json={"message": "boom", "code": "internal"})),
        httpx.MockTransport(lambda r: httpx.Response(502, text="<html>Bad Gateway</html>")),
        httpx.MockTransport(lambda r: httpx.Response(503)),
        httpx.MockTransport(lambda r: httpx.Response(429, json={"message": "slow down", "code": "too_many"})),
        httpx.MockTransport(lambda r: httpx.Response(200, text="<html>captive portal</html>")),
    ],
)
@pytest.mark.parametrize("operation", ["search", "count", "index", "delete", "clear"])
async def test_outages_raise_search_unavailable(transport: httpx.MockTransport, operation: str):
    backend = MeiliSearchBackend(URL, transport=transport)
    calls = {
        "search": lambda: backend.search(SearchQuery(q="piano")),
        "count": backend.count,
        "index": lambda: backend.index(corpus()),
        "delete": lambda: backend.delete([uuid.uuid4()]),
        "clear": backend.clear,
    }
    with pytest.raises(SearchUnavailable) as caught:
        await calls[operation]()
    assert caught.value.status_code == 503
    assert caught.value.message == "Search is temporarily unavailable. Please try again in a moment."


async def test_outage_during_search_after_settings():
    fake = FakeMeili(ready_settings())
    backend = backend_for(fake)
    await backend.ensure_settings()
    backend._client._transport = failing(httpx.ReadTimeout("timed out"))
    with pytest.raises(SearchUnavailable):
        await backend.search(SearchQuery())


async def test_a_refused_request_is_a_meili_error_not_an_outage():
    error = {"message": "Attribute `x` is not filterable.", "code": "invalid_search_filter", "type": "invalid_request"}
    transport = httpx.MockTransport(lambda r: httpx.Response(400, json=error))
    with pytest.raises(MeiliError) as caught:
        await MeiliSearchBackend(URL, transport=transport).search(SearchQuery())
    assert caught.value.code == "invalid_search_filter" and caught.value.status == 400


async def test_api_key_is_sent_as_a_bearer_token():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"numberOfDocuments": 0, **ready_settings()})

    await MeiliSearchBackend(URL, api_key="s3cret", transport=httpx.MockTransport(handler)).count()
    assert seen and set(seen) == {"Bearer s3cret"}


def test_index_names_are_checked():
    with pytest.raises(ValueError):
        MeiliSearchBackend(URL, index_name="../keys")
