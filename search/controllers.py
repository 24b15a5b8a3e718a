"""Search pages and the public search API.

- ``GET /api/v1/tutors``: the public JSON search (documented in the OpenAPI schema).
- ``GET /api/v1/cities?q=``: city autocomplete as JSON (at most ten).
- ``GET /tutors``: the search page; a plain GET form with a filter sidebar that works without
  JavaScript; htmx requests (not boosted) get only the results partial, with the facet lists
  swapped out of band so their counts follow the results.
- ``GET /tutors/cities?q=``: the city suggestions of the page as ``<option>`` elements (htmx).

Availability: ``day`` (mon..sun) and ``time`` (morning 6-12, afternoon 12-17, evening 17-22, night
22-6), repeatable, are read in the viewer's zone (``tz``, else the signed-in user's or the browser's)
and become UTC hour-of-week buckets at that zone's current offset (``search.availability``).
Prices use the admin's exchange-rate table (``search.rates.current_rates``, read per request).

Both entry points turn their input into one :class:`Criteria`, which builds the ``SearchQuery``
(the validation lives there) and the URLs of the page (chips, pagination, suggestions). Refused
input is a ``SearchQueryError``; its code picks a translated message (HTTP 4xx, never a 500).
When the search engine is unavailable (an ``AppError`` with status 503) the page says so.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, get
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import select

from marketplace.db import transaction
from marketplace.errors import AppError
from marketplace.i18n import current_locale, current_timezone, format_money, is_valid_timezone
from marketplace.i18n import gettext as _
from marketplace.tutors.controllers import city_from_text, level_labels
from marketplace.tutors.models import TaxonomyTerm, TutorProfile
from marketplace.tutors.places import City, city_get, city_search
from marketplace.tutors.public import THUMB_SIZE, photo_url
from marketplace.web import is_htmx
from search.availability import DAYS, TIMES, viewer_buckets
from search.backend import (
    DEFAULT_RADIUS_KM,
    MAX_FACET_VALUES,
    MAX_PAGE,
    MAX_PER_PAGE,
    MAX_PRICE_MINOR,
    MAX_RADIUS_KM,
    SORTS,
    SearchBackend,
    SearchHit,
    SearchQuery,
    SearchQueryError,
    SearchResult,
    search_backend,
)
from search.rates import DEFAULT_CURRENCY, convert_minor, current_rates, exchange_rates, to_minor

FILTER_FACETS = ("instrument", "genre", "language", "level", "format")  # the page's sidebar
API_FACETS = ("instrument", "genre", "language", "format")  # the API's facet counts
TERM_FACETS = ("instrument", "genre", "language")  # names from the taxonomy
PAGE_SIZE = 20
CITY_SUGGESTIONS = 10
MAX_SUGGESTION_SEARCHES = 5
MAX_Q_INPUT = 1_000  # SearchQuery keeps at most 200 characters; more is never read
RADIUS_CHOICES = (5, 10, 25, 50, 100, 200)
UNAVAILABLE_STATUS = 503


# ---- backend ------------------------------------------------------------------------------


def _unavailable(exc: AppError) -> bool:
    return exc.status_code == UNAVAILABLE_STATUS


# ---- messages -----------------------------------------------------------------------------


def query_error_message(exc: SearchQueryError) -> str:
    """The translated sentence for a refused search input."""
    code = exc.code
    if code in ("bad_currency", "unknown_currency", "bad_rate"):
        return _(
            "Unknown currency. Choose one of: %(list)s.",
            list=str(exc.params.get("known") or ", ".join(exchange_rates())),
        )
    if code == "bad_day":
        return _("Unknown day. Use: %(list)s.", list=", ".join(DAYS))
    if code == "bad_time":
        return _("Unknown time of day. Use: %(list)s.", list=", ".join(TIMES))
    if code == "bad_timezone":
        return _("Unknown time zone. Use a name like Europe/Berlin.")
    if code == "bad_availability":
        return _("The availability filter is not valid.")
    if code == "bad_price":
        return _("Prices must be numbers from 0 to %(max)s.", max=f"{MAX_PRICE_MINOR // 100:,}".replace(",", "\u202f"))
    if code == "price_range_inverted":
        return _("The lowest price is higher than the highest price.")
    if code == "bad_location":
        return _("The location must be a latitude and a longitude, for example 52.52,13.40.")
    if code == "bad_radius":
        return _("The distance must be more than 0 and at most %(limit)d km.", limit=int(MAX_RADIUS_KM))
    if code == "radius_without_location":
        return _("A distance needs a city or a location.")
    if code == "distance_without_location":
        return _("Sorting by distance needs a city or a location.")
    if code == "unknown_sort":
        return _("Unknown sort order. Choose one of: %(list)s.", list=", ".join(SORTS))
    if code == "bad_page":
        return _("The page must be a whole number from 1 to %(limit)d.", limit=MAX_PAGE)
    if code == "bad_per_page":
        return _("Results per page must be a whole number from 1 to %(limit)d.", limit=MAX_PER_PAGE)
    if code == "too_many_values":
        return _("Choose at most %(limit)d values for one filter.", limit=MAX_FACET_VALUES)
    if code in ("unknown_facet", "bad_facet_values", "bad_facet_value", "bad_filters"):
        return _("One of the filters is not valid.")
    if code == "unknown_city":
        return _("We do not know that city. Pick one from the suggestions.")
    if code == "bad_query":
        return _("The search text could not be read.")
    if code == "bad_online_only":
        return _("The online filter is not valid.")
    return _("Your search could not be understood.")


# ---- criteria -----------------------------------------------------------------------------


def _decimal(raw: Any, name: str) -> Decimal | None:
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        raise SearchQueryError("bad_price", field=name) from None
    if not value.is_finite() or value < 0 or value > MAX_PRICE_MINOR:
        raise SearchQueryError("bad_price", field=name)
    return value


def _float(raw: Any, code: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(str(raw).strip().replace(",", ".")) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        raise SearchQueryError(code) from None
    if not math.isfinite(value):
        raise SearchQueryError(code)
    return value


def _int(raw: Any, code: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if not text.isdigit() or len(text) > 9:
        raise SearchQueryError(code, limit=MAX_PAGE if code == "bad_page" else MAX_PER_PAGE)
    return int(text)


def parse_near(raw: str | None) -> tuple[float, float] | None:
    if raw is None or not raw.strip():
        return None
    parts = raw.split(",")
    if len(parts) != 2:
        raise SearchQueryError("bad_location")
    lat, lng = (_float(part, "bad_location") for part in parts)
    if lat is None or lng is None:
        raise SearchQueryError("bad_location")
    return lat, lng


def parse_city(raw: str | int | None) -> City | None:
    """A geonameid (from autocomplete, the API) or, on the page, typed text ("Madrid, ES")."""
    if raw is None or raw == "":
        return None
    text = " ".join(str(raw).split())[:100]
    if not text:
        return None
    city = city_get(int(text)) if text.isdigit() and len(text) < 12 else city_from_text(text)
    if city is None:
        raise SearchQueryError("unknown_city")
    return city


def city_label(city: City) -> str:
    return f"{city.name}, {city.country}"


@dataclass(frozen=True)
class Criteria:
    """One search as the user asked for it: builds the ``SearchQuery`` and the page's URLs."""

    q: str = ""
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    city: City | None = None
    near: tuple[float, float] | None = None
    radius_km: float | None = None
    price_min: Decimal | None = None  # major units of ``currency``
    price_max: Decimal | None = None
    currency: str = DEFAULT_CURRENCY
    online: bool = False
    days: tuple[str, ...] = ()  # availability: weekdays (DAYS) in the viewer's zone
    times: tuple[str, ...] = ()  # availability: times of day (TIMES) in the viewer's zone
    tz: str | None = None  # the viewer's zone when given in the URL (else the request's zone)
    sort: str = "relevance"
    page: int = 1
    per_page: int = PAGE_SIZE
    rates: Mapping[str, Decimal] = field(default_factory=dict, compare=False)  # empty: the seed table
    facets: tuple[str, ...] = FILTER_FACETS  # the facets whose counts are shown

    @property
    def location(self) -> tuple[float, float] | None:
        if self.near is not None:
            return self.near
        return (self.city.lat, self.city.lng) if self.city else None

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(self.rates or exchange_rates())

    def availability(self, now: datetime | None = None) -> tuple[int, ...]:
        """The UTC hour buckets of the chosen days and times of day (empty: no availability filter)."""
        if not self.days and not self.times:
            return ()
        zone = self.tz or current_timezone()
        return tuple(sorted(viewer_buckets(self.days, self.times, zone, now=now or datetime.now(UTC))))

    def query(self) -> SearchQuery:
        rates = dict(self.rates or exchange_rates())
        if self.currency not in rates:
            raise SearchQueryError("unknown_currency", currency=self.currency[:3], known=", ".join(rates))
        prices = {
            name: None if value is None else to_minor(value, self.currency)
            for name, value in (("price_min", self.price_min), ("price_max", self.price_max))
        }
        return SearchQuery(
            q=self.q,
            filters={facet: list(values) for facet, values in self.filters.items() if values},
            price_min=prices["price_min"],
            price_max=prices["price_max"],
            currency=self.currency,
            rates=rates,
            near=self.location,
            radius_km=self.radius_km,
            online_only=self.online,
            availability=self.availability(),
            facets=self.facets,
            sort=self.sort,
            page=self.page,
            per_page=self.per_page,
        )

    # -- URLs ---------------------------------------------------------------------------

    def pairs(self) -> list[tuple[str, str]]:
        """The canonical query string of this search (the page number only when past the first)."""
        out: list[tuple[str, str]] = []
        if self.q:
            out.append(("q", self.q))
        for facet in FILTER_FACETS:
            out += [(facet, value) for value in self.filters.get(facet, ())]
        if self.city is not None:
            out.append(("city", str(self.city.geonameid)))
        if self.near is not None:
            out.append(("near", f"{self.near[0]:g},{self.near[1]:g}"))
        if self.radius_km is not None and self.location is not None:
            out.append(("radius_km", f"{self.radius_km:g}"))
        if self.price_min is not None:
            out.append(("price_min", _plain(self.price_min)))
        if self.price_max is not None:
            out.append(("price_max", _plain(self.price_max)))
        if self.currency != DEFAULT_CURRENCY:
            out.append(("currency", self.currency))
        if self.online:
            out.append(("online", "1"))
        out += [("day", day) for day in self.days]
        out += [("time", time) for time in self.times]
        if self.tz is not None and (self.days or self.times):
            out.append(("tz", self.tz))
        if self.sort != "relevance":
            out.append(("sort", self.sort))
        if self.page > 1:
            out.append(("page", str(self.page)))
        return out

    def url(self, **changes: Any) -> str:
        criteria = replace(self, **changes) if changes else self
        query = urlencode(criteria.pairs())
        return "/tutors" + (f"?{query}" if query else "")

    def without(self, key: str, value: str | None = None) -> Criteria:
        """This search without one active filter (and back on the first page)."""
        if key in FILTER_FACETS:
            filters = dict(self.filters)
            filters[key] = tuple(v for v in filters.get(key, ()) if v != value)
            return replace(self, filters=filters, page=1)
        if key == "city":
            sort = "relevance" if self.sort == "distance" and self.near is None else self.sort
            return replace(self, city=None, radius_km=None if self.near is None else self.radius_km, sort=sort, page=1)
        if key == "near":
            sort = "relevance" if self.sort == "distance" and self.city is None else self.sort
            return replace(self, near=None, radius_km=None if self.city is None else self.radius_km, sort=sort, page=1)
        if key == "day":
            return replace(self, days=tuple(d for d in self.days if d != value), page=1)
        if key == "time":
            return replace(self, times=tuple(t for t in self.times if t != value), page=1)
        return replace(self, page=1, **{key: {"q": "", "online": False}.get(key)})

    def active(self) -> list[tuple[str, str | None]]:
        """The removable filters, in the order the chips show them."""
        out: list[tuple[str, str | None]] = []
        if self.q:
            out.append(("q", None))
        for facet in FILTER_FACETS:
            out += [(facet, value) for value in self.filters.get(facet, ())]
        if self.city is not None:
            out.append(("city", None))
        if self.near is not None:
            out.append(("near", None))
        for name in ("price_min", "price_max", "online"):
            if getattr(self, name) not in (None, False):
                out.append((name, None))
        out += [("day", day) for day in self.days]
        out += [("time", time) for time in self.times]
        return out


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _clean_values(values: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values or () if isinstance(v, str) and v.strip()))


def parse_days(values: Sequence[str] | None) -> tuple[str, ...]:
    days = tuple(v.lower()[:3] if len(v) > 3 else v.lower() for v in _clean_values(values))
    if any(d not in DAYS for d in days):
        raise SearchQueryError("bad_day")
    return tuple(d for d in DAYS if d in days)


def parse_times(values: Sequence[str] | None) -> tuple[str, ...]:
    times = tuple(v.lower() for v in _clean_values(values))
    if any(t not in TIMES for t in times):
        raise SearchQueryError("bad_time")
    return tuple(t for t in TIMES if t in times)


def parse_tz(raw: str | None) -> str | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not is_valid_timezone(text):
        raise SearchQueryError("bad_timezone")
    return text


def criteria_from_page(params: Any, rates: Mapping[str, Decimal] | None = None) -> Criteria:
    """The page's query string (lenient where a form can leave things empty; raises
    ``SearchQueryError`` for what it cannot read)."""

    def one(name: str) -> str:
        value = params.get(name)
        return value.strip() if isinstance(value, str) else ""

    city = parse_city(one("city"))
    near = parse_near(one("near") or None)
    located = city is not None or near is not None
    sort = one("sort") or "relevance"
    if sort == "distance" and not located:
        sort = "relevance"
    currency = (one("currency") or DEFAULT_CURRENCY).upper()
    return Criteria(
        q=one("q")[:MAX_Q_INPUT],
        filters={facet: _clean_values(params.getall(facet, [])) for facet in FILTER_FACETS},
        city=city,
        near=near,
        radius_km=_float(one("radius_km"), "bad_radius") if located else None,
        price_min=_decimal(one("price_min"), "price_min"),
        price_max=_decimal(one("price_max"), "price_max"),
        currency=currency,
        online=one("online").lower() in ("1", "true", "on", "yes"),
        days=parse_days(params.getall("day", [])),
        times=parse_times(params.getall("time", [])),
        tz=parse_tz(one("tz")),
        sort=sort,
        page=_int(one("page"), "bad_page", 1),
        per_page=PAGE_SIZE,
        rates=dict(rates or {}),
    )


# ---- taxonomy names, hit details -----------------------------------------------------------


async def term_names(request: Request) -> dict[tuple[str, str], str]:
    """(kind, slug) -> display name in the viewer's locale; one query per request."""
    state = request.scope.setdefault("state", {})
    cached = state.get("search_term_names")
    if cached is None:
        locale = current_locale()
        async with transaction(write=False) as session:
            terms = (await session.execute(select(TaxonomyTerm))).scalars().all()
            cached = {(term.kind.value, term.slug): term.name(locale) for term in terms}
        state["search_term_names"] = cached
    return cached


def facet_labels(names: Mapping[tuple[str, str], str]) -> dict[str, dict[str, str]]:
    labels: dict[str, dict[str, str]] = {facet: {} for facet in FILTER_FACETS}
    for (kind, slug), name in names.items():
        if kind in labels:
            labels[kind][slug] = name
    labels["level"] = level_labels()
    labels["format"] = {"online": _("Online"), "in_person": _("In person")}
    return labels


def facet_titles() -> dict[str, str]:
    return {
        "instrument": _("Instrument"),
        "genre": _("Genre"),
        "language": _("Lesson language"),
        "level": _("Level"),
        "format": _("Lesson format"),
    }


def _slugs(values: Any) -> list[str]:
    return [str(v) for v in values or [] if isinstance(v, str) and v]


async def hit_details(hits: Sequence[SearchHit]) -> dict[uuid.UUID, dict[str, Any]]:
    """Instruments, genres, languages and photo of the hits, from their live profiles (one query;
    the index keeps neither, and a hit whose profile is gone keeps empty lists)."""
    if not hits:
        return {}
    async with transaction(write=False) as session:
        rows = await session.execute(
            select(TutorProfile.id, TutorProfile.live).where(TutorProfile.id.in_([h.profile_id for h in hits]))
        )
        lives = {pid: live or {} for pid, live in rows.all()}
    details: dict[uuid.UUID, dict[str, Any]] = {}
    for hit in hits:
        live = lives.get(hit.profile_id, {})
        instruments = [i.get("slug") for i in live.get("instruments") or [] if isinstance(i, Mapping)]
        photo = live.get("photo") if isinstance(live.get("photo"), Mapping) else None
        details[hit.profile_id] = {
            "instruments": _slugs(instruments),
            "genres": _slugs(live.get("genres")),
            "languages": _slugs(live.get("languages")),
            "photo_url": photo_url(photo, THUMB_SIZE) if photo else None,  # type: ignore[arg-type]
        }
    return details


def hit_city(hit: SearchHit) -> City | None:
    return city_get(hit.city_id) if hit.city_id is not None else None


# ---- API schemas ---------------------------------------------------------------------------


class PriceOut(msgspec.Struct):
    amount: int  # minor units of ``currency``, a 60-minute lesson
    currency: str


class TutorHitOut(msgspec.Struct):
    id: uuid.UUID
    slug: str
    name: str
    instruments: list[str]
    genres: list[str]
    languages: list[str]
    city: str | None
    country: str | None
    price: PriceOut | None
    rating: float | None
    review_count: int
    distance_km: float | None


class TutorSearchOut(msgspec.Struct):
    hits: list[TutorHitOut]
    facets: dict[str, dict[str, int]]
    total: int
    page: int
    per_page: int


class CityOut(msgspec.Struct):
    id: int
    name: str
    country: str
    lat: float
    lng: float


SortName = Literal["relevance", "rating", "price_asc", "price_desc", "newest", "distance"]
_FACET_DOC = "Facet value (slug); repeat the parameter for OR inside the facet, facets combine with AND."


class SearchApiController(Controller):
    """The public search API (JSON, documented in /api/schema)."""

    path = "/api/v1"
    tags = ["search"]
    include_in_schema = True

    @get(
        "/tutors",
        name="api_tutor_search",
        summary="Search tutors",
        description=(
            "Full-text search over approved tutors with facets (disjunctive counts), price range in any "
            "listed currency, location radius and sort. Prices in hits are in the tutor's currency, in minor "
            "units. Bad input is a 400 JSON error {error, detail, status}."
        ),
    )
    async def tutors(
        self,
        q: Annotated[str, QueryParameter(description="Free text; words match as prefixes.")] = "",
        instrument: Annotated[list[str] | None, QueryParameter(description=_FACET_DOC)] = None,
        genre: Annotated[list[str] | None, QueryParameter(description=_FACET_DOC)] = None,
        language: Annotated[list[str] | None, QueryParameter(description=_FACET_DOC)] = None,
        level: Annotated[list[str] | None, QueryParameter(description=_FACET_DOC)] = None,
        format_: Annotated[
            list[str] | None, QueryParameter(name="format", description=_FACET_DOC + " Values: online, in_person.")
        ] = None,
        city: Annotated[
            int | None, QueryParameter(description="City geonameid (from /api/v1/cities); implies near=the city.")
        ] = None,
        near: Annotated[str | None, QueryParameter(description="Latitude,longitude in degrees: 52.52,13.40")] = None,
        radius_km: Annotated[
            float | None,
            QueryParameter(
                description=f"Radius around near/city in km (default {DEFAULT_RADIUS_KM:g}, max {MAX_RADIUS_KM:g})."
            ),
        ] = None,
        price_min: Annotated[
            float | None, QueryParameter(description="Lowest price of a 60-minute lesson, major units of currency.")
        ] = None,
        price_max: Annotated[
            float | None, QueryParameter(description="Highest price of a 60-minute lesson, major units of currency.")
        ] = None,
        currency: Annotated[
            str,
            QueryParameter(description="Currency of price_min/price_max: a currency of the exchange-rate table."),
        ] = DEFAULT_CURRENCY,
        online: Annotated[bool, QueryParameter(description="Only tutors who teach online.")] = False,
        day: Annotated[
            list[str] | None,
            QueryParameter(
                description="Available on this weekday in the viewer's zone (" + ", ".join(DAYS) + "); repeat for OR."
            ),
        ] = None,
        time: Annotated[
            list[str] | None,
            QueryParameter(
                description="Available at this time of day in the viewer's zone: morning 6-12, afternoon 12-17, "
                "evening 17-22, night 22-6; repeat for OR. Combined with day: any chosen time on any chosen day."
            ),
        ] = None,
        tz: Annotated[
            str | None,
            QueryParameter(description="The viewer's IANA zone for day/time (default: the signed-in user's zone)."),
        ] = None,
        sort: Annotated[
            SortName, QueryParameter(description="Order of the hits; distance needs near or city.")
        ] = "relevance",
        page: Annotated[int, QueryParameter(description=f"Page number, 1 to {MAX_PAGE}.")] = 1,
        per_page: Annotated[int, QueryParameter(description=f"Hits per page, 1 to {MAX_PER_PAGE}.")] = PAGE_SIZE,
    ) -> TutorSearchOut:
        rates = await current_rates()
        try:
            criteria = Criteria(
                q=q[:MAX_Q_INPUT],
                filters={
                    "instrument": _clean_values(instrument),
                    "genre": _clean_values(genre),
                    "language": _clean_values(language),
                    "level": _clean_values(level),
                    "format": _clean_values(format_),
                },
                city=parse_city(city),
                near=parse_near(near),
                radius_km=_float(radius_km, "bad_radius"),
                price_min=_decimal(price_min, "price_min"),
                price_max=_decimal(price_max, "price_max"),
                currency=currency.strip().upper(),
                online=online,
                days=parse_days(day),
                times=parse_times(time),
                tz=parse_tz(tz),
                sort=sort,
                page=page,
                per_page=per_page,
                rates=rates,
                facets=API_FACETS,
            )
            query = criteria.query()
        except SearchQueryError as exc:
            raise AppError(query_error_message(exc)) from None
        result = await search_backend().search(query)
        details = await hit_details(result.hits)
        return TutorSearchOut(
            hits=[_hit_out(hit, details.get(hit.profile_id, {})) for hit in result.hits],
            facets={facet: dict(result.facets.get(facet, {})) for facet in API_FACETS},
            total=result.total,
            page=result.page,
            per_page=result.per_page,
        )

    @get("/cities", name="api_city_search", summary="City autocomplete")
    async def cities(
        self, q: Annotated[str, QueryParameter(description="The start of a city name (two letters or more).")] = ""
    ) -> list[CityOut]:
        return [
            CityOut(id=c.geonameid, name=c.name, country=c.country, lat=c.lat, lng=c.lng)
            for c in city_search(q[:100], limit=CITY_SUGGESTIONS)
        ]


def _hit_out(hit: SearchHit, details: Mapping[str, Any]) -> TutorHitOut:
    city = hit_city(hit)
    return TutorHitOut(
        id=hit.profile_id,
        slug=hit.slug,
        name=hit.name,
        instruments=list(details.get("instruments", [])),
        genres=list(details.get("genres", [])),
        languages=list(details.get("languages", [])),
        city=city.name if city else None,
        country=hit.country,
        price=PriceOut(amount=hit.price_minor, currency=hit.currency) if hit.price_minor is not None else None,
        rating=hit.rating,
        review_count=hit.review_count,
        distance_km=hit.distance_km,
    )


# ---- the page ------------------------------------------------------------------------------


def _results_only(request: Request) -> bool:
    """htmx swaps only the results; boosted links and history restores want the whole page."""
    return (
        is_htmx(request)
        and request.headers.get("hx-boosted") != "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def _chip_label(criteria: Criteria, key: str, value: str | None, labels: Mapping[str, Mapping[str, str]]) -> str:
    titles = facet_titles()
    if key in FILTER_FACETS and value is not None:
        return f"{titles[key]}: {labels.get(key, {}).get(value) or _humanize(value)}"
    if key == "q":
        return _("Text: “%(q)s”", q=criteria.q)
    if key == "city" and criteria.city is not None:
        radius = criteria.radius_km or DEFAULT_RADIUS_KM
        return _("Within %(km)s km of %(city)s", km=f"{radius:g}", city=criteria.city.name)
    if key == "near" and criteria.near is not None:
        return _("Near %(lat)s, %(lng)s", lat=f"{criteria.near[0]:g}", lng=f"{criteria.near[1]:g}")
    if key == "price_min" and criteria.price_min is not None:
        return _(
            "From %(price)s", price=format_money(to_minor(criteria.price_min, criteria.currency), criteria.currency)
        )
    if key == "day" and value is not None:
        return _("Day: %(day)s", day=day_names().get(value, value))
    if key == "time" and value is not None:
        return _("Time: %(time)s", time=time_names().get(value, value))
    if key == "price_max" and criteria.price_max is not None:
        return _(
            "Up to %(price)s", price=format_money(to_minor(criteria.price_max, criteria.currency), criteria.currency)
        )
    return _("Online only")


def _humanize(slug: str) -> str:
    return slug.replace("-", " ").replace("_", " ").capitalize()


def _money(amount: Decimal, currency: str) -> str:
    return format_money(to_minor(amount, currency), currency)


def _facet_options(
    result: SearchResult | None, criteria: Criteria, labels: Mapping[str, Mapping[str, str]]
) -> dict[str, list[dict[str, Any]]]:
    options: dict[str, list[dict[str, Any]]] = {}
    for facet in FILTER_FACETS:
        counts = dict(result.facets.get(facet, {})) if result else {}
        selected = criteria.filters.get(facet, ())
        known = labels.get(facet, {})
        values = list(counts)
        if not counts and result is None:
            values = list(known)  # no result (an error): offer every known value without counts
        values += [v for v in selected if v not in counts and v not in values]
        options[facet] = [
            {
                "value": value,
                "label": known.get(value) or _humanize(value),
                "count": counts.get(value, 0) if result else None,
                "checked": value in selected,
            }
            for value in values
        ]
    return options


def _card(
    hit: SearchHit,
    details: Mapping[str, Any],
    labels: Mapping[str, Mapping[str, str]],
    currency: str,
    rates: Mapping[str, Decimal],
):
    city = hit_city(hit)
    approx = None
    if hit.price_minor is not None and hit.currency != currency:
        converted = convert_minor(hit.price_minor, hit.currency, currency, rates)
        approx = format_money(converted, currency) if converted is not None else None
    return {
        "slug": hit.slug,
        "name": hit.name,
        "headline": hit.headline,
        "photo_url": details.get("photo_url"),
        "instruments": [labels["instrument"].get(s) or _humanize(s) for s in details.get("instruments", [])],
        "languages": [labels["language"].get(s) or _humanize(s) for s in details.get("languages", [])],
        "place": city_label(city) if city else None,
        "online": hit.online,
        "in_person": hit.in_person,
        "price_minor": hit.price_minor,
        "currency": hit.currency,
        "approx_price": approx,
        "rating": hit.rating,
        "review_count": hit.review_count,
        "trial": hit.trial,
        "distance_km": hit.distance_km,
    }


async def _suggestion(
    backend: SearchBackend, criteria: Criteria, labels: Mapping[str, Mapping[str, str]]
) -> dict[str, Any] | None:
    """The first active filter whose removal finds tutors (at most five extra searches)."""
    for key, value in criteria.active()[:MAX_SUGGESTION_SEARCHES]:
        relaxed = criteria.without(key, value)
        try:
            found = await backend.search(replace(relaxed.query(), per_page=1, page=1, facets=()))
        except SearchQueryError:
            continue
        if found.total:
            return {"label": _chip_label(criteria, key, value, labels), "url": relaxed.url(), "total": found.total}
    return None


class SearchPageController(Controller):
    """The tutor search page and its city suggestions."""

    path = "/tutors"
    include_in_schema = False

    @get("/", name="tutor_search")
    async def search_page(self, request: Request) -> Template:
        labels = facet_labels(await term_names(request))
        error: str | None = None
        unavailable = False
        result: SearchResult | None = None
        criteria = Criteria()
        suggestion = None
        cards: list[dict[str, Any]] = []
        rates = await current_rates()
        try:
            criteria = criteria_from_page(request.query_params, rates)
            query = criteria.query()
        except SearchQueryError as exc:
            error = query_error_message(exc)
            criteria = _salvage(request.query_params, rates)
        else:
            backend = search_backend()
            try:
                result = await backend.search(query)
                if result.total == 0 and criteria.active():
                    suggestion = await _suggestion(backend, criteria, labels)
            except AppError as exc:
                if not _unavailable(exc):
                    raise
                unavailable = True
                result = None
            if result is not None:
                details = await hit_details(result.hits)
                cards = [_card(h, details.get(h.profile_id, {}), labels, criteria.currency, rates) for h in result.hits]
        partial = _results_only(request)
        if unavailable:
            status = 200 if partial else UNAVAILABLE_STATUS  # htmx swaps only 2xx/422 (base.html)
        elif error:
            status = 422
        else:
            status = 200
        chips = [
            {"label": _chip_label(criteria, key, value, labels), "url": criteria.without(key, value).url()}
            for key, value in criteria.active()
        ]
        pages = result.pages if result else 1
        context = {
            "criteria": criteria,
            "result": result,
            "cards": cards,
            "chips": chips,
            "clear_url": "/tutors",
            "error": error,
            "unavailable": unavailable,
            "suggestion": suggestion,
            "facets": _facet_options(result, criteria, labels),
            "facet_titles": facet_titles(),
            "currencies": tuple(rates),
            "days": _day_options(criteria),
            "times": _time_options(criteria),
            "viewer_zone": criteria.tz or current_timezone(),
            "radius_choices": RADIUS_CHOICES,
            "default_radius": DEFAULT_RADIUS_KM,
            "sorts": _sort_labels(),
            "city_text": city_label(criteria.city) if criteria.city else request.query_params.get("city", "")[:100],
            "prev_url": criteria.url(page=criteria.page - 1) if result and criteria.page > 1 else None,
            "next_url": criteria.url(page=criteria.page + 1) if result and criteria.page < pages else None,
            "pages": pages,
            "oob": partial,
        }
        template = "search/_results.html" if partial else "search/page.html"
        return Template(template, context=context, status_code=status)

    @get("/cities", name="tutor_search_cities")
    async def city_options(self, request: Request) -> Template:
        typed = (request.query_params.get("q") or request.query_params.get("city") or "")[:100]
        name = typed.split(",", 1)[0].strip()
        cities = city_search(name, limit=CITY_SUGGESTIONS) if not name.isdigit() else []
        return Template("search/_city_options.html", context={"cities": [city_label(c) for c in cities]})


def _sort_labels() -> list[tuple[str, str]]:
    return [
        ("relevance", _("Best match")),
        ("rating", _("Best rated")),
        ("price_asc", _("Lowest price")),
        ("price_desc", _("Highest price")),
        ("newest", _("Newest")),
        ("distance", _("Nearest")),
    ]


def _day_options(criteria: Criteria) -> list[dict[str, Any]]:
    names = day_names()
    return [{"value": d, "label": names[d], "checked": d in criteria.days} for d in DAYS]


def _time_options(criteria: Criteria) -> list[dict[str, Any]]:
    names = time_names()
    return [{"value": t, "label": names[t], "checked": t in criteria.times} for t in TIMES]


def day_names() -> dict[str, str]:
    return {
        "mon": _("Monday"),
        "tue": _("Tuesday"),
        "wed": _("Wednesday"),
        "thu": _("Thursday"),
        "fri": _("Friday"),
        "sat": _("Saturday"),
        "sun": _("Sunday"),
    }


def time_names() -> dict[str, str]:
    return {
        "morning": _("Morning (6–12)"),
        "afternoon": _("Afternoon (12–17)"),
        "evening": _("Evening (17–22)"),
        "night": _("Night (22–6)"),
    }


def _salvage(params: Any, rates: Mapping[str, Decimal]) -> Criteria:
    """What can be kept of a refused search, to show the form back as the user left it."""
    kept: dict[str, Any] = {
        "filters": {f: _clean_values(params.getall(f, []))[:MAX_FACET_VALUES] for f in FILTER_FACETS}
    }
    q = params.get("q")
    if isinstance(q, str):
        kept["q"] = q.strip()[:MAX_Q_INPUT]
    currency = str(params.get("currency") or "").strip().upper()
    if currency in rates:
        kept["currency"] = currency
    kept["rates"] = dict(rates)
    kept["days"] = tuple(d for d in DAYS if d in params.getall("day", []))
    kept["times"] = tuple(t for t in TIMES if t in params.getall("time", []))
    kept["online"] = str(params.get("online") or "").lower() in ("1", "true", "on", "yes")
    if params.get("sort") in SORTS and params.get("sort") != "distance":
        kept["sort"] = params.get("sort")
    return Criteria(**kept)
