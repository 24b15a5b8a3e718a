"""Exchange rates for price filters and the viewer's currency (EUR base: units of a currency per 1 EUR).

A fixed table for now, good enough for filtering and an approximate "about" price; an
admin-maintained table (with its migration and an audit record on change) replaces it later.
Tutors are always charged in their own currency; these rates never touch money that moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision

RATES: Mapping[str, Decimal] = {
    "EUR": Decimal("1"),
    "USD": Decimal("1.08"),
    "GBP": Decimal("0.85"),
    "CHF": Decimal("0.95"),
    "CAD": Decimal("1.48"),
    "AUD": Decimal("1.65"),
    "SEK": Decimal("11.40"),
    "PLN": Decimal("4.30"),
    "JPY": Decimal("162"),
    "INR": Decimal("90.5"),
    "BRL": Decimal("5.90"),
    "MXN": Decimal("18.9"),
}
CURRENCIES: tuple[str, ...] = tuple(RATES)
DEFAULT_CURRENCY = "EUR"


def exchange_rates() -> dict[str, Decimal]:
    """The current rates (a copy: callers may not change the table)."""
    return dict(RATES)


def to_minor(amount: Decimal, currency: str) -> int:
    """Major units (12.50) to minor units (1250) of ``currency``, rounded half up."""
    return int(amount.scaleb(get_currency_precision(currency)).to_integral_value(ROUND_HALF_UP))


def convert_minor(amount_minor: int, source: str, target: str) -> int | None:
    """An amount in minor units of ``source`` in minor units of ``target`` (None without a rate)."""
    if source not in RATES or target not in RATES:
        return None
    if source == target:
        return amount_minor
    major = Decimal(amount_minor).scaleb(-get_currency_precision(source)) / RATES[source] * RATES[target]
    return to_minor(major, target)
