"""Internationalisation: locale negotiation, gettext for Python and Jinja, Babel formatting.

The current locale and time zone live in context variables set per request by
:class:`marketplace.app.LocaleMiddleware`; jobs set them for the recipient before rendering.
Catalogs are read from ``marketplace/locale/<lang>/LC_MESSAGES/messages.po`` and compiled in
memory, so a checkout never runs with stale compiled catalogs.
"""

from __future__ import annotations

import gettext as _gettext
import io
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import LazyProxy

from marketplace.settings import SUPPORTED_LOCALES, get_settings

LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_locale: ContextVar[str | None] = ContextVar("locale", default=None)
_timezone: ContextVar[str | None] = ContextVar("timezone", default=None)


@cache
def translations(locale: str) -> _gettext.NullTranslations:
    po_path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return _gettext.NullTranslations()
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def current_locale() -> str:
    return _locale.get() or get_settings().default_locale


def current_timezone() -> str:
    return _timezone.get() or get_settings().default_timezone


@contextmanager
def use_locale(locale: str | None, timezone: str | None = None) -> Iterator[None]:
    """Render in ``locale`` and ``timezone`` inside the block (mails, jobs)."""
    t1 = _locale.set(locale if locale in SUPPORTED_LOCALES else None)
    t2 = _timezone.set(timezone if is_valid_timezone(timezone) else None)
    try:
        yield
    finally:
        _locale.reset(t1)
        _timezone.reset(t2)


def set_request_locale(locale: str, timezone: str | None) -> None:
    _locale.set(locale)
    _timezone.set(timezone)


def gettext(message: str, **variables: object) -> str:
    text = translations(current_locale()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations(current_locale()).ngettext(singular, plural, n)
    variables.setdefault("num", n)
    return text % variables


def lazy_gettext(message: str, **variables: object) -> LazyProxy:
    """A message translated when it is rendered (module-level constants, form labels)."""
    return LazyProxy(gettext, message, enable_cache=False, **variables)


_ = gettext


# ---- negotiation ---------------------------------------------------------------------------


def parse_accept_language(header: str | None) -> list[str]:
    """Languages from an Accept-Language header, best first (q-values respected)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        piece = part.strip()
        if not piece:
            continue
        lang, _, params = piece.partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > 0 and lang.strip() != "*":
            weighted.append((-q, index, lang.strip().replace("_", "-").lower()))
    return [lang for _, _, lang in sorted(weighted)]


def negotiate_locale(*, user_locale: str | None, cookie_locale: str | None, accept_language: str | None) -> str:
    """User setting, then the switcher's cookie, then Accept-Language, then the default."""
    for candidate in (user_locale, cookie_locale):
        if candidate in SUPPORTED_LOCALES:
            return candidate
    for lang in parse_accept_language(accept_language):
        primary = lang.split("-", 1)[0]
        if primary in SUPPORTED_LOCALES:
            return primary
    return get_settings().default_locale


def locale_name(code: str) -> str:
    """A locale's own name ("Deutsch", "English"), for the language switcher."""
    return Locale.parse(code).get_display_name(code).capitalize()


# ---- time zones ----------------------------------------------------------------------------


@cache
def all_timezones() -> tuple[str, ...]:
    skip = ("Etc/", "SystemV/", "posix/", "right/")
    zones = {z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(skip)}
    return tuple(sorted(zones | {"UTC"}))


@cache
def _timezone_set() -> frozenset[str]:
    return frozenset(all_timezones())


def is_valid_timezone(name: str | None) -> bool:
    return bool(name) and name in _timezone_set()


# ---- formatting ----------------------------------------------------------------------------


def _babel_locale() -> Locale:
    try:
        return Locale.parse(current_locale())
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def format_money(amount_minor: int, currency: str) -> str:
    """Format an amount in minor units (cents) for the viewer's locale."""
    digits = babel_numbers.get_currency_precision(currency)
    value = Decimal(amount_minor).scaleb(-digits)
    return babel_numbers.format_currency(value, currency, locale=_babel_locale())


def to_viewer_zone(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zoneinfo.ZoneInfo(current_timezone()))


def format_datetime(value: datetime, format: str = "medium") -> str:
    local = to_viewer_zone(value)
    return babel_dates.format_datetime(local, format=format, tzinfo=local.tzinfo, locale=_babel_locale())


def format_date(value: date | datetime, format: str = "medium") -> str:
    if isinstance(value, datetime):
        value = to_viewer_zone(value).date()
    return babel_dates.format_date(value, format=format, locale=_babel_locale())


def format_time(value: datetime, format: str = "short") -> str:
    local = to_viewer_zone(value)
    return babel_dates.format_time(local, format=format, tzinfo=local.tzinfo, locale=_babel_locale())


def format_number(value: int | float | Decimal) -> str:
    return babel_numbers.format_decimal(value, locale=_babel_locale())


def install_jinja(env: object) -> None:
    """Give a Jinja environment gettext (new style) and the formatting filters."""
    from jinja2 import Environment

    assert isinstance(env, Environment)
    env.add_extension("jinja2.ext.i18n")
    # Jinja's new-style gettext does the %-formatting itself, so it gets the raw lookups.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: translations(current_locale()).gettext(message),
        lambda singular, plural, n: translations(current_locale()).ngettext(singular, plural, n),
        newstyle=True,
    )
    env.filters.update(
        money=format_money, datetime=format_datetime, date=format_date, time=format_time, number=format_number
    )
    env.globals.update(
        current_locale=current_locale,
        current_timezone=current_timezone,
        locale_name=locale_name,
        now=lambda: datetime.now(UTC),
    )
