"""Catalogs are complete, negotiation follows the rules, Babel formats for locale and zone."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from marketplace.i18n import (
    format_datetime,
    format_money,
    format_time,
    gettext,
    negotiate_locale,
    parse_accept_language,
    use_locale,
)
from marketplace.settings import ROOT, SUPPORTED_LOCALES

KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def source_messages() -> set[str]:
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog(locale: str):
    path = Path(ROOT / "marketplace" / "locale" / locale / "LC_MESSAGES" / "messages.po")
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def test_source_has_messages_to_translate():
    assert len(source_messages()) > 100


@pytest.mark.parametrize("locale", [loc for loc in SUPPORTED_LOCALES if loc != "en"])
def test_every_message_in_the_code_is_translated(locale):
    cat = catalog(locale)
    missing = []
    for msgid in sorted(source_messages()):
        entry = cat.get(msgid)
        strings = entry.string if entry and isinstance(entry.string, tuple) else ((entry.string,) if entry else ())
        if entry is None or entry.fuzzy or not strings or not all(strings):
            missing.append(msgid)
    assert not missing, f"{len(missing)} messages lack a {locale} translation (run make i18n-update): {missing[:10]}"


@pytest.mark.parametrize("locale", [loc for loc in SUPPORTED_LOCALES if loc != "en"])
def test_translations_keep_their_placeholders(locale):
    for entry in catalog(locale):
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) <= wanted | set(PLACEHOLDER.findall(ids[0])), entry.id


def test_gettext_follows_the_current_locale():
    with use_locale("de"):
        assert gettext("Log in") == "Anmelden"
    with use_locale("en"):
        assert gettext("Log in") == "Log in"


def test_accept_language_is_parsed_by_quality():
    assert parse_accept_language("en;q=0.5, de-AT;q=0.9, fr") == ["fr", "de-at", "en"]
    assert parse_accept_language("*;q=0.1, xx;q=0") == []
    assert parse_accept_language(None) == []


def test_locale_negotiation_order():
    assert negotiate_locale(user_locale="de", cookie_locale="en", accept_language="en") == "de"
    assert negotiate_locale(user_locale=None, cookie_locale="de", accept_language="en") == "de"
    assert negotiate_locale(user_locale=None, cookie_locale="zz", accept_language="de-CH,en") == "de"
    assert negotiate_locale(user_locale=None, cookie_locale=None, accept_language="ja") == "en"


def test_money_is_formatted_from_minor_units_for_the_locale():
    with use_locale("en"):
        assert format_money(4500, "EUR") == "€45.00"
        assert format_money(123456, "USD") == "$1,234.56"
        assert format_money(5000, "JPY") == "¥5,000"  # no minor unit
    with use_locale("de"):
        assert format_money(4500, "EUR").replace("\xa0", " ") == "45,00 €"


def test_times_are_shown_in_the_viewers_zone_across_daylight_saving():
    # 17:00 UTC on 2026-03-20: New York already on EDT (UTC-4), Berlin still on CET (UTC+1).
    instant = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
    with use_locale("en", "America/New_York"):
        assert format_time(instant) == "1:00\u202fPM"
    with use_locale("de", "Europe/Berlin"):
        assert format_time(instant) == "18:00"
        assert "20.03.2026" in format_datetime(instant, "medium")
    # A week later Berlin has changed too (CEST, UTC+2).
    later = datetime(2026, 3, 30, 17, 0, tzinfo=UTC)
    with use_locale("de", "Europe/Berlin"):
        assert format_time(later) == "19:00"
    with use_locale("en", "Asia/Kolkata"):  # a half-hour zone
        assert format_time(instant) == "10:30\u202fPM"
