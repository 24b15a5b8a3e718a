"""The Meilisearch backend: the same ``SearchBackend`` contract over Meilisearch's HTTP API (v1.4+).

Only ``httpx`` is used; ``transport`` is the injection point for tests (``httpx.MockTransport``).

- Index settings are applied by ``ensure_settings()``, idempotently: it reads the current settings
  and PATCHes only the keys that differ (creating the index with primary key ``id`` if missing).
  Every other operation runs it once per instance first. Meilisearch applies writes as
  asynchronous tasks; every write here waits for its task (``wait_for_task``, bounded).
- Text: ``q`` is the query's folded words (``SearchQuery.terms``), so quotes and engine operators
  never reach the engine; ``matchingStrategy: all`` makes every word required, as in SQL. Meilisearch
  matches only the *last* word as a prefix (SQL matches every word as a prefix) and tolerates typos.
- Filters are string expressions: every value is double-quoted with backslashes and quotes escaped;
  OR inside a facet, AND across facets. Attribute names are our own constants.
- Facet counts are disjunctive, as in Algolia/InstantSearch: one ``/multi-search`` request holds
  the hits query (which also counts every facet without a filter) and one ``limit: 0`` query per
  filtered facet with that facet's own filter left out.
- Price *filters* are exact, like SQL: one ``currency = X AND price_minor`` range per currency of the
  query's rate table, bounds from ``SearchQuery.price_bounds_in``. Price *sorts* use
  ``price_eur_minor``, precomputed at index time with the backend's ``rates`` (the admin's table,
  passed by ``search.backend.search_backend``); a rate change re-indexes every document
  (``search.sync.search_rates_changed``); tutors whose currency has no rate sort last.
- Availability: ``availability IN [...]`` over the document's weekly UTC hour buckets (an array).
- Geography: ``_geoRadius`` in meters, ``_geoPoint(...):asc`` for the distance sort; distances come
  from ``_geoDistance`` (whole meters).
- Totals stop at ``pagination.maxTotalHits`` (MAX_TOTAL_HITS); filter string values compare
  case-insensitively in Meilisearch (facet values are lowercase slugs or codes, so no clash).
- Connection errors, timeouts, 429 and 5xx raise ``SearchUnavailable`` (HTTP 503, translated message);
  any other refusal (4xx, failed task) is ``MeiliError``: a bug or bad data, not an outage.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC
from decimal import Decimal
from typing import Any

import httpx

from marketplace.errors import AppError
from marketplace.i18n import gettext as _
from marketplace.tutors.places import distance_km
from search.backend import SearchHit, SearchQuery, SearchResult, currency_digits
from search.documents import FACETS, SearchDocument

log = logging.getLogger("search.meili")

MAX_TOTAL_HITS = 10_000
MAX_VALUES_PER_FACET = 1_000
CHUNK = 1_000  # documents or ids per request
TASK_TIMEOUT = 60.0  # seconds to wait for one indexing task
REQUEST_TIMEOUT = 10.0
_INDEX_UID = re.compile(r"^[A-Za-z0-9_-]{1,400}$")
_SET_SETTINGS = ("filterableAttributes", "sortableAttributes")  # order-free in Meilisearch

QUALITY_SORT = ("rating:desc", "review_count:desc", "lessons_taught:desc")
TIE_BREAK = "id:asc"  # the SQL backend breaks ties by profile id too
SORT_RULES: dict[str, tuple[str, ...]] = {
    "relevance": QUALITY_SORT,  # the ``sort`` ranking rule comes after the text rules
    "rating": QUALITY_SORT,
    "price_asc": ("price_eur_minor:asc",),
    "price_desc": ("price_eur_minor:desc",),
    "newest": ("newest:desc",),
}
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


def desired_settings() -> dict[str, Any]:
    """The index settings this backend needs (``PATCH /indexes/{uid}/settings``)."""
    return {
        "searchableAttributes": ["name", "headline", "text"],
        "filterableAttributes": [*FACETS, "price_minor", "currency", "online", "_geo", "availability"],
        "sortableAttributes": ["rating", "review_count", "lessons_taught", "price_eur_minor", "newest", "_geo", "id"],
        "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"],
        "faceting": {"maxValuesPerFacet": MAX_VALUES_PER_FACET, "sortFacetValuesBy": {"*": "count"}},
        "pagination": {"maxTotalHits": MAX_TOTAL_HITS},
        "typoTolerance": {"enabled": True},
    }


class SearchUnavailable(AppError):
    """The search engine cannot be reached or is failing: the page says so and the user retries."""

    status_code = 503

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or _("Search is temporarily unavailable. Please try again in a moment."))


class MeiliError(RuntimeError):
    """Meilisearch refused a request (4xx) or a task failed: ``code`` is Meilisearch's error code."""

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status


# ---- translation ---------------------------------------------------------------------------


def quote(value: str) -> str:
    """A filter string literal: double quotes, with backslashes and quotes escaped (Meilisearch >= 1.4)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(x: float) -> str:
    text = f"{float(x):.7f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def facet_filter(facet: str, values: Sequence[str]) -> str:
    return "(" + " OR ".join(f"{facet} = {quote(v)}" for v in values) + ")"


def price_filter(query: SearchQuery) -> str | None:
    """Exact, like SQL: for every currency with a rate, that currency and the converted bounds."""
    if query.price_min is None and query.price_max is None:
        return None
    options = []
    for currency in sorted(query.rates):
        lo, hi = query.price_bounds_in(currency)  # type: ignore[misc]
        parts = [f"currency = {quote(currency)}"]
        if lo is not None:
            parts.append(f"price_minor >= {lo}")
        if hi is not None:
            parts.append(f"price_minor <= {hi}")
        options.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(options) + ")"


def geo_filter(query: SearchQuery) -> str | None:
    if query.near is None:
        return None
    meters = round((query.radius_km or 0) * 1000)
    return f"_geoRadius({_number(query.near[0])}, {_number(query.near[1])}, {meters})"


def filter_expression(query: SearchQuery, *, without: str | None = None) -> str | None:
    """Every condition of the query joined with AND, optionally without one facet's filter."""
    parts = [facet_filter(facet, values) for facet, values in query.filters.items() if facet != without]
    parts += [p for p in (price_filter(query), geo_filter(query)) if p]
    if query.online_only:
        parts.append("online = true")
    if query.availability:
        parts.append(availability_filter(query.availability))
    return " AND ".join(parts) or None


def availability_filter(buckets: Sequence[int]) -> str:
    """Any of the UTC hour buckets (``availability`` is an array attribute: one element matching is enough)."""
    return "availability IN [" + ", ".join(str(int(b)) for b in buckets) + "]"


def sort_rules(query: SearchQuery) -> list[str]:
    if query.sort == "distance":
        lat, lng = query.near  # type: ignore[misc]
        return [f"_geoPoint({_number(lat)},{_number(lng)}):asc", TIE_BREAK]
    return [*SORT_RULES[query.sort], TIE_BREAK]


def search_queries(query: SearchQuery, index_uid: str) -> list[dict[str, Any]]:
    """The ``/multi-search`` queries: hits (with the unfiltered facets), then one per filtered facet."""
    q = " ".join(query.terms)
    main: dict[str, Any] = {
        "indexUid": index_uid,
        "q": q,
        "matchingStrategy": "all",
        "page": query.page,
        "hitsPerPage": query.per_page,
        "sort": sort_rules(query),
        "facets": [facet for facet in query.facets if facet not in query.filters],
        "attributesToRetrieve": RETRIEVED,
        "showRankingScore": False,
    }
    expression = filter_expression(query)
    if expression:
        main["filter"] = expression
    queries = [main]
    for facet in query.filters:
        if facet not in query.facets:
            continue
        extra: dict[str, Any] = {"indexUid": index_uid, "q": q, "matchingStrategy": "all", "limit": 0}
        expression = filter_expression(query, without=facet)
        if expression:
            extra["filter"] = expression
        extra["facets"] = [facet]
        queries.append(extra)
    return queries


def eur_minor(price_minor: int | None, currency: str, rates: Mapping[str, Decimal]) -> float | None:
    """A price in EUR cents (fractional, for sorting) with ``rates`` (units of a currency per 1 EUR)."""
    rate = rates.get(currency)
    if price_minor is None or rate is None:
        return None
    return float(Decimal(price_minor).scaleb(2 - currency_digits(currency)) / rate)


def to_document(doc: SearchDocument, rates: Mapping[str, Decimal]) -> dict[str, Any]:
    """The Meilisearch document for one tutor; absent values are left out (they sort last)."""
    body: dict[str, Any] = {
        "id": str(doc.profile_id),
        "user_id": str(doc.user_id),
        "slug": doc.slug,
        "name": doc.name[:200],
        "headline": doc.headline[:200],
        "text": doc.text,
        "currency": doc.currency,
        "review_count": doc.review_count,
        "lessons_taught": doc.lessons_taught,
        "trial": doc.trial,
        "online": doc.online,
        "in_person": doc.in_person,
        "availability": list(doc.availability),
    }
    for facet in FACETS:
        body[facet] = list(dict.fromkeys(doc.facets.get(facet, ())))
    optional = {
        "price_minor": doc.price_minor,
        "price_eur_minor": eur_minor(doc.price_minor, doc.currency, rates),
        "rating": doc.rating,
        "country_code": doc.country,
        "city_id": doc.city_id,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if doc.newest is not None:
        newest = doc.newest if doc.newest.tzinfo else doc.newest.replace(tzinfo=UTC)
        body["newest"] = newest.timestamp()
    if doc.lat is not None and doc.lng is not None:
        body["_geo"] = {"lat": doc.lat, "lng": doc.lng}
    return body


def _hit(hit: Mapping[str, Any], query: SearchQuery) -> SearchHit:
    distance = None
    if query.near is not None:
        if hit.get("_geoDistance") is not None:
            distance = round(hit["_geoDistance"] / 1000, 3)
        elif isinstance(hit.get("_geo"), Mapping):
            geo = hit["_geo"]
            distance = round(distance_km(query.near[0], query.near[1], float(geo["lat"]), float(geo["lng"])), 3)
    return SearchHit(
        profile_id=uuid.UUID(hit["id"]),
        slug=hit["slug"],
        name=hit["name"],
        headline=hit["headline"],
        price_minor=hit.get("price_minor"),
        currency=hit["currency"],
        rating=hit.get("rating"),
        review_count=int(hit.get("review_count") or 0),
        lessons_taught=int(hit.get("lessons_taught") or 0),
        trial=bool(hit.get("trial")),
        online=bool(hit.get("online")),
        in_person=bool(hit.get("in_person")),
        country=hit.get("country_code"),
        city_id=hit.get("city_id"),
        distance_km=distance,
    )


def merge_facets(query: SearchQuery, results: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Unfiltered facets from the hits query, each filtered facet from its own query."""
    counts: dict[str, dict[str, int]] = {facet: {} for facet in FACETS}
    main = results[0].get("facetDistribution") or {}
    for facet in query.facets:
        if facet not in query.filters:
            counts[facet] = dict(main.get(facet) or {})
    for facet, result in zip([f for f in query.filters if f in query.facets], results[1:], strict=True):
        counts[facet] = dict((result.get("facetDistribution") or {}).get(facet) or {})
    return {
        facet: dict(sorted(((str(v), int(n)) for v, n in values.items() if n), key=lambda kv: (-kv[1], kv[0])))
        for facet, values in counts.items()
    }


def _same(desired: Any, current: Any, key: str = "") -> bool:
    if key in _SET_SETTINGS and isinstance(current, list) and all(isinstance(v, str) for v in [*desired, *current]):
        return set(desired) == set(current)
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(_same(v, current.get(k)) for k, v in desired.items())
    return desired == current


# ---- the backend ---------------------------------------------------------------------------


class MeiliSearchBackend:
    """``SearchBackend`` over one Meilisearch index."""

    name = "meilisearch"

    def __init__(
        self,
        url: str,
        index_name: str = "tutors",
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rates: Mapping[str, Decimal] | None = None,
        timeout: float = REQUEST_TIMEOUT,
        task_timeout: float = TASK_TIMEOUT,
    ) -> None:
        if not _INDEX_UID.match(index_name):
            raise ValueError(f"invalid Meilisearch index name: {index_name!r}")
        self.index_name = index_name
        self.rates: dict[str, Decimal] = {}
        self.set_rates(rates or {})
        self.task_timeout = task_timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._ready = False
        self._lock = asyncio.Lock()

    def set_rates(self, rates: Mapping[str, Decimal]) -> None:
        """The rates used for ``price_eur_minor`` of the documents indexed from now on."""
        self.rates = {"EUR": Decimal(1), **{c: Decimal(r) for c, r in rates.items()}}

    @property
    def _path(self) -> str:
        return f"/indexes/{self.index_name}"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> MeiliSearchBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- HTTP ---------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # connection refused, DNS, timeouts, broken connections
            log.warning("meilisearch %s %s failed: %r", method, path, exc)
            raise SearchUnavailable() from exc
        status = response.status_code
        if status >= 500 or status == 429:
            log.warning("meilisearch %s %s answered %s: %s", method, path, status, response.text[:500])
            raise SearchUnavailable()
        try:
            body = response.json() if response.content else None
        except ValueError as exc:
            log.warning("meilisearch %s %s answered non-JSON (%s)", method, path, status)
            raise SearchUnavailable() from exc
        if status >= 400:
            error = body if isinstance(body, dict) else {}
            raise MeiliError(str(error.get("code") or status), str(error.get("message") or ""), status=status)
        return body

    async def wait_for_task(self, task_uid: int, *, within: float | None = None) -> dict[str, Any]:
        """Poll ``GET /tasks/{uid}`` until the task succeeds: ``MeiliError`` when it fails or is
        canceled, ``SearchUnavailable`` when still pending after ``within`` (default ``task_timeout``) seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.task_timeout if within is None else within)
        delay = 0.01
        while True:
            task = await self._request("GET", f"/tasks/{int(task_uid)}")
            status = task.get("status")
            if status == "succeeded":
                return task
            if status in ("failed", "canceled"):
                error = task.get("error") or {}
                raise MeiliError(str(error.get("code") or status), str(error.get("message") or f"task {task_uid}"))
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("meilisearch task %s still %s after waiting", task_uid, status)
                raise SearchUnavailable()
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.5)

    async def _write(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        task = await self._request(method, path, **kwargs)
        return await self.wait_for_task(task["taskUid"])

    # -- settings -----------------------------------------------------------------------

    async def ensure_settings(self) -> dict[str, Any]:
        """Create the index if missing and PATCH the settings that differ; returns what was changed."""
        try:
            current = await self._request("GET", f"{self._path}/settings")
        except MeiliError as exc:
            if exc.code != "index_not_found":
                raise
            try:
                await self._write("POST", "/indexes", json={"uid": self.index_name, "primaryKey": "id"})
            except MeiliError as created:
                if created.code != "index_already_exists":  # another process won the race
                    raise
            current = await self._request("GET", f"{self._path}/settings")
        changes = {key: value for key, value in desired_settings().items() if not _same(value, current.get(key), key)}
        if changes:
            await self._write("PATCH", f"{self._path}/settings", json=changes)
        self._ready = True
        return changes

    async def _prepare(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self.ensure_settings()

    # -- SearchBackend ------------------------------------------------------------------

    async def index(self, docs: Sequence[SearchDocument]) -> None:
        unique = [to_document(doc, self.rates) for doc in {doc.profile_id: doc for doc in docs}.values()]
        if not unique:
            return
        await self._prepare()
        tasks = [
            await self._request(
                "POST", f"{self._path}/documents", params={"primaryKey": "id"}, json=unique[i : i + CHUNK]
            )
            for i in range(0, len(unique), CHUNK)
        ]
        for task in tasks:
            await self.wait_for_task(task["taskUid"])

    async def delete(self, ids: Sequence[uuid.UUID]) -> None:
        unique = [str(i) for i in dict.fromkeys(ids)]
        if not unique:
            return
        await self._prepare()
        for i in range(0, len(unique), CHUNK):
            await self._write("POST", f"{self._path}/documents/delete-batch", json=unique[i : i + CHUNK])

    async def clear(self) -> None:
        """Delete every document (the index and its settings stay)."""
        await self._prepare()
        await self._write("DELETE", f"{self._path}/documents")

    async def count(self) -> int:
        await self._prepare()
        stats = await self._request("GET", f"{self._path}/stats")
        return int(stats["numberOfDocuments"])

    async def search(self, query: SearchQuery) -> SearchResult:
        await self._prepare()
        queries = search_queries(query, self.index_name)
        answer = await self._request("POST", "/multi-search", json={"queries": queries})
        results = answer["results"]
        main = results[0]
        return SearchResult(
            hits=[_hit(hit, query) for hit in main.get("hits") or []],
            facets=merge_facets(query, results),
            total=int(main.get("totalHits") or 0),
            page=query.page,
            per_page=query.per_page,
        )
