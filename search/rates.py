"""Exchange rates for price filters and the viewer's currency (EUR base: units of a currency per 1 EUR).

The table is maintained by admins (``exchange_rates``, page ``/admin/rates``, every change audited);
the migration seeds it with ``SEED_RATES`` (what the demo ships). Tutors are always charged in their
own currency; these rates never touch money that moves.

Both search backends apply the rates *at query time* for price filters (``SearchQuery.rates``), so a
rate change reaches the SQL backend with the next search. Meilisearch also keeps a precomputed EUR
price for its price sorts; a change therefore schedules ``search_rates_changed``, which re-indexes
when Meilisearch is the configured backend (``search.sync``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

from babel.numbers import get_currency_precision, list_currencies
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

SEED_RATES: Mapping[str, Decimal] = {
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
RATES = SEED_RATES  # the demo's table (kept under its old name for callers that want the defaults)
BASE_CURRENCY = "EUR"
DEFAULT_CURRENCY = "EUR"
# Sane bounds for "units per 1 EUR": the weakest currencies in use are around 10**5 per EUR.
MIN_RATE = Decimal("0.0001")
MAX_RATE = Decimal("1000000")
MAX_RATE_DIGITS = 12  # significant digits kept


@cache
def known_currencies() -> frozenset[str]:
    """ISO 4217 codes Babel knows (current and historic ones that still have a name)."""
    return frozenset(code for code in list_currencies() if len(code) == 3 and code.isalpha() and code.isupper())


def parse_rate(raw: object) -> Decimal | None:
    """A rate as typed ("1.08", "1,08"), or None when it is not a positive number within the bounds."""
    text = str(raw if raw is not None else "").strip().replace(",", ".").replace("\u202f", "").replace(" ", "")
    if not text or len(text) > 32:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or not MIN_RATE <= value <= MAX_RATE:
        return None
    digits = value.adjusted() + 1
    if len(value.as_tuple().digits) > MAX_RATE_DIGITS and digits <= MAX_RATE_DIGITS:
        value = value.quantize(Decimal(1).scaleb(digits - MAX_RATE_DIGITS), rounding=ROUND_HALF_UP)
    return value.normalize() if value == value.to_integral_value() else value


def rate_text(value: Decimal) -> str:
    return format(value.normalize(), "f")


async def rates_in(session: AsyncSession) -> dict[str, Decimal]:
    """The current table, read in the caller's transaction (EUR always 1; the seed table when empty)."""
    from search.models import ExchangeRate

    rows = (await session.execute(select(ExchangeRate.currency, ExchangeRate.rate))).all()
    if not rows:  # an empty table (a database emptied by hand, a test): the table the demo ships
        return dict(SEED_RATES)
    rates: dict[str, Decimal] = {}
    for currency, text in rows:
        value = parse_rate(text)
        if value is not None and currency in known_currencies():
            rates[currency] = value
    rates[BASE_CURRENCY] = Decimal(1)
    return dict(sorted(rates.items(), key=lambda kv: (kv[0] != BASE_CURRENCY, kv[0])))


async def current_rates() -> dict[str, Decimal]:
    """The current table in its own read transaction (one small query)."""
    from marketplace.db import transaction

    async with transaction(write=False) as session:
        return await rates_in(session)


def exchange_rates() -> dict[str, Decimal]:
    """The seed table (a copy). Searches use ``current_rates()``, which reads the admin's table."""
    return dict(SEED_RATES)


def to_minor(amount: Decimal, currency: str) -> int:
    """Major units (12.50) to minor units (1250) of ``currency``, rounded half up."""
    return int(amount.scaleb(get_currency_precision(currency)).to_integral_value(ROUND_HALF_UP))


def convert_minor(
    amount_minor: int, source: str, target: str, rates: Mapping[str, Decimal] | None = None
) -> int | None:
    """An amount in minor units of ``source`` in minor units of ``target`` (None without a rate)."""
    table = SEED_RATES if rates is None else rates
    if source not in table or target not in table:
        return None
    if source == target:
        return amount_minor
    major = Decimal(amount_minor).scaleb(-get_currency_precision(source)) / table[source] * table[target]
    return to_minor(major, target)
