"""A small fixed set of tutors for the search contract, and a brute-force reference search."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from marketplace.tutors.places import distance_km
from search.backend import SearchQuery, currency_digits
from search.documents import FACETS, SearchDocument, document_from_profile

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RATES = {"EUR": Decimal(1), "GBP": Decimal("0.85"), "JPY": Decimal(160), "USD": Decimal("1.08")}
NAMES = {
    "piano": "Piano",
    "guitar": "Guitar",
    "violin": "Violin",
    "drums": "Drums",
    "voice": "Voice",
    "saxophone": "Saxophone",
    "jazz": "Jazz",
    "classical": "Classical",
    "flamenco": "Flamenco",
    "pop": "Pop",
    "rock": "Rock",
}
MADRID = (40.4168, -3.7038)


def city(geonameid: int, name: str, country: str, lat: float, lng: float) -> dict:
    return {"geonameid": geonameid, "name": name, "country": country, "lat": lat, "lng": lng, "timezone": "UTC"}


BERLIN = city(2950159, "Berlin", "DE", 52.52437, 13.41053)
MADRID_CITY = city(3117735, "Madrid", "ES", *MADRID)
GETAFE = city(3121960, "Getafe", "ES", 40.30571, -3.73295)
ALCALA = city(3130616, "Alcalá de Henares", "ES", 40.48205, -3.35996)
BARCELONA = city(3128760, "Barcelona", "ES", 41.38879, 2.15899)
LONDON = city(2643743, "London", "GB", 51.50853, -0.12574)
TOKYO = city(1850147, "Tokyo", "JP", 35.6895, 139.69171)

ALL = ["beginner", "intermediate", "advanced"]
# key, name, instruments, genres, languages, ages, online, in person, city, currency, durations,
# trial, (rating count, rating sum), lessons, approved days ago
TUTORS = [
    ("anna", "Anna Müller", [("piano", ["beginner", "intermediate"])], ["jazz", "classical"], ["de", "en"],
     ["adults", "teens"], True, True, BERLIN, "EUR", [(60, 4000)], True, (10, 48), 120, 10),
    ("jose", "José García", [("guitar", ["beginner", "advanced"])], ["flamenco"], ["es"],
     ["adults"], False, True, MADRID_CITY, "EUR", [(30, 1500), (90, 5000)], False, (4, 20), 30, 5),
    ("lucia", "Lucía Pérez", [("violin", ALL)], ["classical"], ["es", "en"],
     ["children", "teens"], True, True, GETAFE, "EUR", [(60, 3500)], False, (0, 0), 0, 1),
    ("jordi", "Jordi Puig", [("piano", ["advanced"])], ["pop", "rock"], ["en", "es"],
     ["adults"], True, True, BARCELONA, "EUR", [(60, 5000)], False, (3, 12), 44, 2),
    ("tom", "Tom Smith", [("drums", ["beginner"])], ["rock"], ["en"],
     ["teens", "adults"], True, True, LONDON, "GBP", [(60, 3400)], True, (5, 22), 60, 20),
    ("yuki", "Yuki Tanaka", [("piano", ["beginner", "intermediate"]), ("voice", ["beginner"])], ["classical"],
     ["ja", "en"], ["children"], True, False, TOKYO, "JPY", [(60, 6400)], False, (2, 9), 15, 30),
    ("mia", "Mia Sánchez", [("voice", ALL)], ["pop", "jazz"], ["en", "es"],
     ["adults"], True, False, None, "USD", [(45, 4200)], True, (0, 0), 3, 3),
    ("marta", "Marta Ruiz", [("saxophone", ["intermediate"])], ["jazz"], ["es"],
     ["adults"], False, True, ALCALA, "EUR", [(60, 2500)], False, (1, 5), 8, 7),
]  # fmt: skip


def profile_id(key: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"cadenza-search-test/{key}")


def live(row: tuple) -> dict:
    _key, name, instruments, genres, langs, ages, online, in_person, place, currency, durations, trial = row[:12]
    return {
        "display_name": name,
        "headline": f"{NAMES[instruments[0][0]]} lessons with {name.split()[0]}",
        "instruments": [{"slug": slug, "levels": levels} for slug, levels in instruments],
        "genres": genres,
        "age_groups": ages,
        "languages": langs,
        "online": online,
        "in_person": in_person,
        "city": place,
        "currency": currency,
        "durations": [{"minutes": m, "price": p} for m, p in durations],
        "trial": {"minutes": 30, "price": 1000} if trial else None,
        "bio": f"I teach {', '.join(genres)} to {' and '.join(ages)}.",
        "photo": None,
    }


def corpus() -> list[SearchDocument]:
    docs = []
    for row in TUTORS:
        key = row[0]
        (count, total), lessons, days = row[12], row[13], row[14]
        docs.append(
            document_from_profile(
                profile_id(key),
                uuid.uuid5(uuid.NAMESPACE_URL, f"cadenza-search-test/user/{key}"),
                key,
                live(row),
                count,
                total,
                lessons,
                NOW - timedelta(days=days),
                term_name=lambda _kind, slug: NAMES.get(slug, slug),
            )
        )
    return docs


def ids(*keys: str) -> set[uuid.UUID]:
    return {profile_id(k) for k in keys}


# ---- brute force ---------------------------------------------------------------------------


def price_in(doc: SearchDocument, query: SearchQuery) -> Decimal | None:
    """The doc's price in minor units of the query's currency (None when not convertible)."""
    if doc.price_minor is None or doc.currency not in query.rates:
        return None
    major_eur = Decimal(doc.price_minor).scaleb(-currency_digits(doc.currency)) / query.rates[doc.currency]
    return (major_eur * query.rates[query.currency]).scaleb(currency_digits(query.currency))


def matches(doc: SearchDocument, query: SearchQuery, *, without: str | None = None) -> bool:
    words = re.findall(r"[^\W_]+", doc.text)
    if not all(any(w.startswith(t) for w in words) for t in query.terms):
        return False
    for facet, values in query.filters.items():
        if facet != without and not set(doc.facets.get(facet, ())) & set(values):
            return False
    if query.online_only and not doc.online:
        return False
    if query.price_min is not None or query.price_max is not None:
        price = price_in(doc, query)
        if price is None:
            return False
        if query.price_min is not None and price < query.price_min:
            return False
        if query.price_max is not None and price > query.price_max:
            return False
    if query.near is not None:
        if doc.lat is None or doc.lng is None:
            return False
        if distance_km(*query.near, doc.lat, doc.lng) > query.radius_km + 1e-9:
            return False
    return True


def brute_force(docs: list[SearchDocument], query: SearchQuery) -> tuple[set[uuid.UUID], dict[str, dict[str, int]]]:
    found = {d.profile_id for d in docs if matches(d, query)}
    facets = {}
    for facet in FACETS:
        counter = Counter(v for d in docs if matches(d, query, without=facet) for v in d.facets.get(facet, ()))
        facets[facet] = dict(counter)
    return found, facets
