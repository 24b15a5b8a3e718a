"""The search backend interface: one query shape, one result shape, any engine behind it.

Backends: ``search.sql.SqlSearchBackend`` (embedded, same database) and later Meilisearch. A
``SearchQuery`` validates itself when built, so a backend only ever sees sane input; bad input is a
``SearchQueryError`` with a stable code that the web layer turns into a message.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

from marketplace.errors import CodedError
from search.documents import EARTH_RADIUS_KM, FACETS, SearchDocument, fold_text

HOURS_PER_WEEK = 168

SORTS = ("relevance", "rating", "price_asc", "price_desc", "newest", "distance")
MAX_PER_PAGE = 50
MAX_PAGE = 1000
MAX_RADIUS_KM = 500.0
DEFAULT_RADIUS_KM = 25.0
MAX_PRICE_MINOR = 10**9
MAX_Q_CHARS = 200  # longer queries are cut at a word boundary, never refused
MAX_TERMS = 12
MAX_FACET_VALUES = 50  # values selected in one facet
MAX_VALUE_CHARS = 64
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_TOKEN = re.compile(r"[^\W_]+")


class SearchQueryError(CodedError):
    """Refused search input: ``code`` names the problem, ``params`` the details."""


def query_terms(q: str) -> list[str]:
    """The words of a query, folded like the indexed text: letters and digits only, so that quotes
    and engine operators (AND, NEAR(, *, -, :) are plain words or nothing."""
    return folded_words(q)[:MAX_TERMS]


def folded_words(text: str | None) -> list[str]:
    """Every word of a text folded as the query's words are (a name, for relevance; ``fold_text``
    is ``fold`` at C speed)."""
    return _TOKEN.findall(fold_text(text or ""))


def currency_digits(currency: str) -> int:
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency)


@dataclass(frozen=True)
class SearchQuery:
    q: str = ""
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)  # OR inside a facet, AND across
    price_min: int | None = None  # minor units of ``currency``, inclusive
    price_max: int | None = None
    currency: str = "EUR"
    rates: Mapping[str, Decimal] = field(default_factory=dict)  # units of a currency per 1 EUR
    near: tuple[float, float] | None = None  # (lat, lng)
    radius_km: float | None = None  # with ``near``; DEFAULT_RADIUS_KM when omitted
    online_only: bool = False
    availability: Sequence[int] = ()  # UTC hour-of-week buckets (search.availability); any one matches
    sort: str = "relevance"
    page: int = 1
    per_page: int = 20
    facets: Sequence[str] = FACETS  # the facets to count (the others come back empty)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.q, str):
            raise SearchQueryError("bad_query")
        q = self.q.strip()
        if len(q) > MAX_Q_CHARS:
            cut = q[:MAX_Q_CHARS]
            q = cut.rsplit(None, 1)[0] if " " in cut.strip() else cut
        set_(self, "q", q)

        if not isinstance(self.filters, Mapping):
            raise SearchQueryError("bad_filters")
        filters: dict[str, tuple[str, ...]] = {}
        for facet, values in self.filters.items():
            if facet not in FACETS:
                raise SearchQueryError("unknown_facet", facet=str(facet)[:MAX_VALUE_CHARS])
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise SearchQueryError("bad_facet_values", facet=facet)
            if len(values) > MAX_FACET_VALUES:
                raise SearchQueryError("too_many_values", facet=facet, limit=MAX_FACET_VALUES)
            for value in values:
                if not isinstance(value, str) or not value or len(value) > MAX_VALUE_CHARS:
                    raise SearchQueryError("bad_facet_value", facet=facet)
            if values:
                filters[facet] = tuple(dict.fromkeys(values))
        set_(self, "filters", filters)

        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise SearchQueryError("bad_currency")
        rates: dict[str, Decimal] = {}
        for code, rate in (self.rates or {}).items():
            try:
                value = Decimal(rate)
            except (InvalidOperation, TypeError, ValueError):
                raise SearchQueryError("bad_rate", currency=str(code)[:3]) from None
            if not isinstance(code, str) or not _CURRENCY.match(code) or not value.is_finite() or value <= 0:
                raise SearchQueryError("bad_rate", currency=str(code)[:3])
            rates[code] = value
        rates.setdefault("EUR", Decimal(1))
        set_(self, "rates", rates)
        for name in ("price_min", "price_max"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRICE_MINOR:
                raise SearchQueryError("bad_price", field=name)
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise SearchQueryError("price_range_inverted")
        if (self.price_min is not None or self.price_max is not None) and self.currency not in rates:
            raise SearchQueryError("unknown_currency", currency=self.currency)

        if self.near is not None:
            try:
                lat, lng = (float(v) for v in self.near)
            except (TypeError, ValueError):
                raise SearchQueryError("bad_location") from None
            if not (math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90 and -180 <= lng <= 180):
                raise SearchQueryError("bad_location")
            set_(self, "near", (lat, lng))
            radius = DEFAULT_RADIUS_KM if self.radius_km is None else self.radius_km
            if isinstance(radius, bool) or not isinstance(radius, int | float) or not math.isfinite(radius):
                raise SearchQueryError("bad_radius")
            if not 0 < radius <= MAX_RADIUS_KM:
                raise SearchQueryError("bad_radius", limit=MAX_RADIUS_KM)
            set_(self, "radius_km", float(radius))
        elif self.radius_km is not None:
            raise SearchQueryError("radius_without_location")

        if self.sort not in SORTS:
            raise SearchQueryError("unknown_sort", sort=str(self.sort)[:32])
        if self.sort == "distance" and self.near is None:
            raise SearchQueryError("distance_without_location")
        for name, cap in (("page", MAX_PAGE), ("per_page", MAX_PER_PAGE)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cap:
                raise SearchQueryError("bad_" + name, limit=cap)
        if not isinstance(self.online_only, bool):
            raise SearchQueryError("bad_online_only")
        if isinstance(self.facets, str) or not isinstance(self.facets, Sequence):
            raise SearchQueryError("bad_filters")
        for facet in self.facets:
            if facet not in FACETS:
                raise SearchQueryError("unknown_facet", facet=str(facet)[:MAX_VALUE_CHARS])
        set_(self, "facets", tuple(f for f in FACETS if f in self.facets))
        if isinstance(self.availability, str | bytes) or not isinstance(self.availability, Sequence | frozenset | set):
            raise SearchQueryError("bad_availability")
        buckets = set()
        for bucket in self.availability:
            if isinstance(bucket, bool) or not isinstance(bucket, int) or not 0 <= bucket < HOURS_PER_WEEK:
                raise SearchQueryError("bad_availability")
            buckets.add(bucket)
        set_(self, "availability", tuple(sorted(buckets)))

    @property
    def terms(self) -> list[str]:
        return query_terms(self.q)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def price_bounds_in(self, currency: str) -> tuple[int | None, int | None] | None:
        """The price range in minor units of ``currency`` (exact: a price p matches iff lo <= p <= hi),
        or None when ``currency`` has no rate (its tutors cannot match a price filter)."""
        if currency not in self.rates:
            return None
        # minor(c) = minor(q) * rate(c) / rate(q) * 10**digits(c) / 10**digits(q)
        factor = (self.rates[currency] / self.rates[self.currency]).scaleb(
            currency_digits(currency) - currency_digits(self.currency)
        )
        lo = None if self.price_min is None else int((self.price_min * factor).to_integral_value(ROUND_CEILING))
        hi = None if self.price_max is None else int((self.price_max * factor).to_integral_value(ROUND_FLOOR))
        return lo, hi

    def eur_factor(self, currency: str) -> float | None:
        """Multiply a price in minor units of ``currency`` by this for EUR (major units), for sorting."""
        rate = self.rates.get(currency)
        return None if rate is None else float(Decimal(1).scaleb(-currency_digits(currency)) / rate)

    @property
    def max_chord(self) -> float:
        """The straight-line distance through the unit sphere that matches ``radius_km``."""
        return 2 * math.sin(min(math.pi, (self.radius_km or 0) / EARTH_RADIUS_KM) / 2)


@dataclass(frozen=True)
class SearchHit:
    profile_id: uuid.UUID
    slug: str
    name: str
    headline: str
    price_minor: int | None
    currency: str
    rating: float | None
    review_count: int
    lessons_taught: int
    trial: bool
    online: bool
    in_person: bool
    country: str | None
    city_id: int | None
    distance_km: float | None = None  # set when the query has ``near``


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]]  # disjunctive: counts for F apply every filter except F's own
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


@runtime_checkable
class SearchBackend(Protocol):
    async def index(self, docs: Sequence[SearchDocument]) -> None:
        """Add or replace these documents (by profile id)."""
        ...

    async def delete(self, ids: Sequence[uuid.UUID]) -> None:
        """Remove these profiles; unknown ids are ignored."""
        ...

    async def search(self, query: SearchQuery) -> SearchResult: ...

    async def count(self) -> int:
        """How many documents the index holds."""
        ...


# ---- the configured backend ----------------------------------------------------------------

_shared: dict[tuple[str, str], Any] = {}


def search_backend(*, rates: Mapping[str, Decimal] | None = None, shared: bool = True) -> SearchBackend:
    """The configured backend: Meilisearch when MEILI_URL is set, else the embedded SQL backend.

    ``rates`` (the admin's table, ``search.rates.current_rates()``) go to Meilisearch, which
    precomputes EUR prices for its price sorts at index time; the SQL backend applies the query's
    rates at query time and needs none. ``shared=True`` returns one Meilisearch client per
    URL and key (its connection pool is reused across requests; never close it); ``shared=False``
    a new one that the caller closes (``aclose``)."""
    from marketplace.settings import ConfigurationError, get_settings

    settings = get_settings()
    if not settings.meili_url:
        from search.sql import SqlSearchBackend

        return SqlSearchBackend()
    try:
        from search.meili import MeiliSearchBackend
    except ImportError as exc:  # pragma: no cover - search.meili only needs httpx, a dependency
        raise ConfigurationError(
            "MEILI_URL is set but the Meilisearch backend (search.meili) cannot be imported: "
            f"{exc}. Unset MEILI_URL to use the embedded SQL search."
        ) from exc
    key = (settings.meili_url, settings.meili_key or "")
    if not shared:
        return MeiliSearchBackend(url=key[0], api_key=key[1] or None, rates=rates)
    instance = _shared.get(key)
    if instance is None:
        instance = _shared[key] = MeiliSearchBackend(url=key[0], api_key=key[1] or None, rates=rates)
    elif rates is not None:
        instance.set_rates(rates)
    return instance
