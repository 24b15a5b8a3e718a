"""Validation of the tutor onboarding steps. Each ``clean_<step>`` takes the submitted form (a
mapping of field name to a list of values, as HTML forms send them) and returns the cleaned
fragment of the profile document plus per-field messages in the user's language."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from marketplace.i18n import gettext as _

STEPS = ("basics", "photo", "teaching", "place", "pricing", "about")
LEVELS = ("beginner", "intermediate", "advanced")
AGE_GROUPS = ("children", "teens", "adults")
DURATIONS = (30, 45, 60, 90, 120)
TRIAL_DURATIONS = (15, 20, 30)
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "CAD", "AUD", "SEK", "PLN", "JPY", "INR", "BRL", "MXN")
# Prices per lesson, in major units: below the minimum is a mistake, above the maximum absurd.
PRICE_RANGE = {
    "JPY": (500, 150_000),
    "INR": (100, 80_000),
    "SEK": (50, 10_000),
    "PLN": (20, 4_000),
    "BRL": (20, 5_000),
    "MXN": (100, 20_000),
}
DEFAULT_PRICE_RANGE = (5, 1_000)
HEADLINE_MAX = 120
QUALIFICATIONS_MAX = 2000
MAX_RADIUS_KM = 200
MAX_INSTRUMENTS = 8
MAX_GENRES = 12
MAX_LANGUAGES = 8

# Changes to these fields go live at once; every other field needs an admin's approval again.
NON_MATERIAL_FIELDS = frozenset({"currency", "durations", "trial", "travel_radius_km"})

Form = Mapping[str, Sequence[str]]


def _one(form: Form, name: str) -> str:
    values = form.get(name) or []
    return values[0] if values else ""


def currency_digits(currency: str) -> int:
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency)


def parse_price(raw: str, currency: str) -> int | None:
    """A price typed by a person ("45", "45.50", "45,50") in minor units, or None if malformed."""
    from decimal import Decimal, InvalidOperation

    text = (raw or "").strip().replace(" ", "").replace("\u00a0", "")
    if not text or len(text) > 12:
        return None
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    digits = currency_digits(currency)
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        return None
    return int(minor)


def price_bounds(currency: str) -> tuple[int, int]:
    low, high = PRICE_RANGE.get(currency, DEFAULT_PRICE_RANGE)
    scale = 10 ** currency_digits(currency)
    return low * scale, high * scale


def check_price(minor: int | None, currency: str, field: str, errors: dict[str, str]) -> None:
    from marketplace.i18n import format_money

    low, high = price_bounds(currency)
    if minor is None:
        errors[field] = _("Enter a price as a number, like 45 or 45.50.")
    elif minor < low or minor > high:
        errors[field] = _("Enter a price between %(low)s and %(high)s.") % {
            "low": format_money(low, currency),
            "high": format_money(high, currency),
        }


def clean_choices(
    values: Sequence[str], allowed: Sequence[str] | set[str], field: str, errors: dict[str, str], *, limit: int
) -> list[str]:
    chosen = list(dict.fromkeys(v for v in values if v))
    if any(v not in allowed for v in chosen):
        errors[field] = _("Choose only from the list.")
        return []
    if len(chosen) > limit:
        errors[field] = _("Choose at most %(max)d.") % {"max": limit}
    return chosen[:limit]


def clean_pricing(form: Form) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    currency = _one(form, "currency")
    if currency not in CURRENCIES:
        return {}, {"currency": _("Choose a currency from the list.")}
    durations = []
    for minutes in DURATIONS:
        if _one(form, f"offer_{minutes}"):
            price = parse_price(_one(form, f"price_{minutes}"), currency)
            check_price(price, currency, f"price_{minutes}", errors)
            durations.append({"minutes": minutes, "price": price})
    if not durations:
        errors["durations"] = _("Offer at least one lesson length with its price.")
    trial = None
    if _one(form, "trial"):
        raw_minutes = _one(form, "trial_minutes")
        minutes = int(raw_minutes) if raw_minutes.isdigit() else 0
        if minutes not in TRIAL_DURATIONS:
            errors["trial_minutes"] = _("Choose a trial length from the list.")
        price = parse_price(_one(form, "trial_price"), currency)
        check_price(price, currency, "trial_price", errors)
        trial = {"minutes": minutes, "price": price}
    return {"currency": currency, "durations": durations, "trial": trial}, errors


def clean_basics(form: Form) -> tuple[dict[str, Any], dict[str, str]]:
    from marketplace.accounts.schemas import FieldErrors, clean_display_name

    errors = FieldErrors()
    name = clean_display_name(_one(form, "display_name"), errors)
    headline = " ".join(_one(form, "headline").split())
    if not headline:
        errors["headline"] = _("Write a short headline, like “Jazz piano for adult beginners”.")
    elif len(headline) > HEADLINE_MAX:
        errors["headline"] = _("A headline can have at most %(max)d characters.") % {"max": HEADLINE_MAX}
    elif _looks_like_markup(headline):
        errors["headline"] = _("Plain text only, please: no HTML.")
    return {"display_name": name, "headline": headline}, dict(errors)


def _looks_like_markup(text: str) -> bool:
    import re

    return bool(re.search(r"<\s*/?\s*[a-zA-Z!?]", text))


def clean_teaching(form: Form, *, instruments: set[str], genres: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    chosen = clean_choices(form.get("instrument", []), instruments, "instrument", errors, limit=MAX_INSTRUMENTS)
    teaching = []
    for slug in chosen:
        levels = clean_choices(form.get(f"levels_{slug}", []), LEVELS, f"levels_{slug}", errors, limit=len(LEVELS))
        if not levels and f"levels_{slug}" not in errors:
            errors[f"levels_{slug}"] = _("Choose the levels you teach.")
        teaching.append({"slug": slug, "levels": [lvl for lvl in LEVELS if lvl in levels]})
    if not chosen and "instrument" not in errors:
        errors["instrument"] = _("Choose at least one instrument.")
    genre_list = clean_choices(form.get("genre", []), genres, "genre", errors, limit=MAX_GENRES)
    ages = clean_choices(form.get("age_group", []), AGE_GROUPS, "age_group", errors, limit=len(AGE_GROUPS))
    if not ages and "age_group" not in errors:
        errors["age_group"] = _("Choose who you teach.")
    return {"instruments": teaching, "genres": genre_list, "age_groups": [a for a in AGE_GROUPS if a in ages]}, errors


def clean_place(form: Form, *, languages: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    from marketplace.tutors.places import city_get

    errors: dict[str, str] = {}
    langs = clean_choices(form.get("language", []), languages, "language", errors, limit=MAX_LANGUAGES)
    if not langs and "language" not in errors:
        errors["language"] = _("Choose the languages you teach in.")
    online = bool(_one(form, "online"))
    in_person = bool(_one(form, "in_person"))
    if not online and not in_person:
        errors["format"] = _("Teach online, in person, or both.")
    city = None
    raw_city = _one(form, "city_id")
    if raw_city:
        found = city_get(int(raw_city)) if raw_city.isdigit() and len(raw_city) < 12 else None
        if found is None:
            errors["city_id"] = _("Choose a city from the suggestions.")
        else:
            city = found.as_dict()
    elif in_person:
        errors["city_id"] = _("Choose the city where you teach in person.")
    radius = 0
    if in_person:
        raw = _one(form, "travel_radius_km") or "0"
        radius = int(raw) if raw.isdigit() and len(raw) < 5 else -1
        if not 0 <= radius <= MAX_RADIUS_KM:
            errors["travel_radius_km"] = _("Enter a travel distance from 0 to %(max)d km.") % {"max": MAX_RADIUS_KM}
    return {
        "languages": langs,
        "online": online,
        "in_person": in_person,
        "city": city,
        "travel_radius_km": max(radius, 0),
    }, errors
