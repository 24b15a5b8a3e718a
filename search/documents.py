"""The search document: what every search backend indexes for one approved, visible tutor.

Pure: built from a profile's ``live`` document and its counters, no I/O. The taxonomy's display
names are passed in (``term_name``) so that the text matches what students type.
"""

from __future__ import annotations

import math
import sys
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

# Facet names, in the order a search page shows them.
FACETS = ("instrument", "genre", "language", "level", "age_group", "format", "country", "city")
FORMAT_ONLINE = "online"
FORMAT_IN_PERSON = "in_person"
TEXT_MAX = 20_000  # folded characters of searchable text per tutor
EARTH_RADIUS_KM = 6371.0088

TermName = Callable[[str, str], str]  # (kind, slug) -> display name


@cache
def _combining_marks() -> dict[int, None]:
    """A ``str.translate`` table that drops every combining character."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))}


def fold_text(text: str) -> str:
    """``marketplace.tutors.places.fold``, character for character, at C speed for long texts (a
    reindex folds every tutor's bio): the combining marks go through one ``translate``."""
    text = text.replace("ß", "ss").replace("ø", "o").replace("Ø", "o").replace("ł", "l").replace("Ł", "l")
    decomposed = unicodedata.normalize("NFKD", text)
    if not decomposed.isascii():
        decomposed = decomposed.translate(_combining_marks())
    return decomposed.casefold().strip()


def _slug_name(_kind: str, slug: str) -> str:
    return slug


@dataclass(frozen=True)
class SearchDocument:
    profile_id: uuid.UUID
    user_id: uuid.UUID
    slug: str
    name: str
    headline: str
    text: str  # folded: name, headline, instrument/genre/city names, bio
    facets: Mapping[str, tuple[str, ...]]
    price_minor: int | None  # a 60-minute lesson, in minor units of ``currency``
    currency: str
    rating: float | None
    review_count: int
    lessons_taught: int
    trial: bool
    online: bool
    in_person: bool
    lat: float | None
    lng: float | None
    country: str | None
    city_id: int | None
    newest: datetime | None
    availability: tuple[int, ...] = field(default=())  # weekly UTC hour buckets (search.availability)

    @property
    def doc_key(self) -> int:
        """A stable positive 63-bit integer for engines that want integer ids (FTS5 rowid)."""
        return doc_key(self.profile_id)


def doc_key(profile_id: uuid.UUID) -> int:
    return int.from_bytes(profile_id.bytes[:8], "big") >> 1


def unit_vector(lat: float, lng: float) -> tuple[float, float, float]:
    """The point on the unit sphere: chord distances between these need no trigonometry in SQL."""
    p, lam = math.radians(lat), math.radians(lng)
    return (math.cos(p) * math.cos(lam), math.cos(p) * math.sin(lam), math.sin(p))


def price_per_hour(durations: Any) -> int | None:
    """The price of a 60-minute lesson in minor units; without one, the offered duration closest to
    an hour (the longer on a tie) scaled linearly and rounded half up."""
    offers = [
        (int(d["minutes"]), int(d["price"]))
        for d in durations or []
        if isinstance(d, Mapping) and int(d.get("minutes") or 0) > 0 and d.get("price") is not None
    ]
    if not offers:
        return None
    minutes, price = min(offers, key=lambda o: (abs(o[0] - 60), -o[0]))
    if minutes == 60:
        return price
    return int((Decimal(price) * 60 / Decimal(minutes)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _unique(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def document_from_profile(
    profile_id: uuid.UUID,
    user_id: uuid.UUID,
    slug: str,
    live: Mapping[str, Any],
    rating_count: int,
    rating_sum: int,
    lessons_taught: int,
    approved_at: datetime | None,
    *,
    term_name: TermName = _slug_name,
    availability: tuple[int, ...] = (),
) -> SearchDocument:
    """One tutor's search document from the approved ``live`` profile (the caller indexes only
    approved, visible profiles and deletes the others)."""
    instruments = [i for i in live.get("instruments") or [] if isinstance(i, Mapping) and i.get("slug")]
    instrument_slugs = _unique(i["slug"] for i in instruments)
    genres = _unique(live.get("genres") or [])
    levels = _unique(level for i in instruments for level in i.get("levels") or [])
    online, in_person = bool(live.get("online")), bool(live.get("in_person"))
    city = live.get("city") if isinstance(live.get("city"), Mapping) else None
    country = str(city["country"]).upper() if city and city.get("country") else None
    city_id = int(city["geonameid"]) if city and city.get("geonameid") is not None else None
    lat = float(city["lat"]) if city and city.get("lat") is not None else None
    lng = float(city["lng"]) if city and city.get("lng") is not None else None

    name = str(live.get("display_name") or "")
    headline = str(live.get("headline") or "")
    words = [
        name,
        headline,
        *(term_name("instrument", s) for s in instrument_slugs),
        *(term_name("genre", s) for s in genres),
        str(city.get("name") or "") if city else "",
        str(live.get("bio") or ""),
    ]
    text = fold_text(" ".join(w for w in words if w))[:TEXT_MAX]

    facets: dict[str, tuple[str, ...]] = {
        "instrument": instrument_slugs,
        "genre": genres,
        "language": _unique(live.get("languages") or []),
        "level": levels,
        "age_group": _unique(live.get("age_groups") or []),
        "format": tuple(f for f, on in ((FORMAT_ONLINE, online), (FORMAT_IN_PERSON, in_person)) if on),
        "country": (country,) if country else (),
        "city": (str(city_id),) if city_id is not None else (),
    }
    return SearchDocument(
        profile_id=profile_id,
        user_id=user_id,
        slug=slug,
        name=name,
        headline=headline,
        text=text,
        facets={k: v for k, v in facets.items() if v},
        price_minor=price_per_hour(live.get("durations")),
        currency=str(live.get("currency") or "EUR").upper(),
        rating=round(rating_sum / rating_count, 2) if rating_count else None,
        review_count=int(rating_count),
        lessons_taught=int(lessons_taught),
        trial=bool(live.get("trial")),
        online=online,
        in_person=in_person,
        lat=lat,
        lng=lng,
        country=country,
        city_id=city_id,
        newest=approved_at,
        availability=tuple(sorted(set(availability))),
    )
