"""Masking of contact details in messages (pure, no I/O, no i18n).

Until a student and a tutor have a paid lesson, email addresses, phone numbers and links to outside
payment or messaging services are replaced by a placeholder that the caller passes in (translated).
Ordinary numbers stay: years, dates, times, prices, counts.

The patterns err on the side of masking for contact-looking text and on the side of showing for
plain numbers: a number needs at least seven digits before it counts as a phone number.
"""

from __future__ import annotations

import re

DEFAULT_PLACEHOLDER = "[contact details hidden]"

# Hosts of outside payment and contact services; any subdomain and any path is masked too.
BLOCKED_HOSTS = (
    "paypal.me",
    "paypal.com",
    "venmo.com",
    "cash.app",
    "cash.me",
    "revolut.me",
    "revolut.com",
    "wise.com",
    "transferwise.com",
    "buymeacoffee.com",
    "ko-fi.com",
    "patreon.com",
    "monzo.me",
    "bunq.me",
    "wa.me",
    "whatsapp.com",
    "t.me",
    "telegram.me",
    "telegram.org",
    "signal.me",
)

# Mail providers that identify an obfuscated address even without its top-level domain.
MAIL_PROVIDERS = ("gmail", "googlemail", "yahoo", "hotmail", "outlook", "gmx", "icloud", "protonmail", "proton")

_FLAGS = re.IGNORECASE

# "@", "(at)", "[at]", "{at}", "<at>" and " at "; "." , "(dot)", " dot " and the like.
_AT_BRACKET = r"\s*[(\[{<]\s*at\s*[)\]}>]\s*"
_DOT_BRACKET = r"\s*[(\[{<]\s*dot\s*[)\]}>]\s*"
_AT_WORD = r"[ \t]+at[ \t]+"
_DOT_WORD = r"[ \t]+dot[ \t]+"
_DOT_ANY = rf"(?:\.|{_DOT_BRACKET}|{_DOT_WORD})"
_LOCAL = r"(?<![\w.+-])[\w][\w.+-]*"
_LABEL = r"[\w-]+"
_TLD = r"(?!dot(?!\w))[^\W\d_]{2,24}"


def _host_pattern(host: str) -> str:
    return _DOT_ANY.join(re.escape(label) for label in host.split("."))


_LINK_RE = re.compile(
    r"(?<![\w.'’@-])(?:https?://)?(?:[\w-]+\.)*(?:"
    + "|".join(_host_pattern(h) for h in BLOCKED_HOSTS)
    + r")(?![\w-])(?:[ \t]?/[^\s<>\"']*[^\s<>\"'.,;:!?)]|/)?",
    _FLAGS,
)

_EMAIL_PATTERNS = (
    # name@example.com, also with spaces around the @
    rf"{_LOCAL}[ \t]?@[ \t]?{_LABEL}(?:\.{_LABEL})*\.{_TLD}(?!\w)",
    # name(at)example(dot)com, name [at] example.com
    rf"{_LOCAL}{_AT_BRACKET}{_LABEL}(?:{_DOT_ANY}{_LABEL})*",
    # name at example dot com: the word form needs at least one obfuscated dot
    rf"{_LOCAL}{_AT_WORD}{_LABEL}(?:{_DOT_ANY}{_LABEL})*?(?:{_DOT_BRACKET}|{_DOT_WORD}){_TLD}(?!\w)",
    # name at gmail, name @ gmx: a known mail provider, with or without its domain
    rf"{_LOCAL}(?:{_AT_WORD}|[ \t]?@[ \t]?)(?:{'|'.join(MAIL_PROVIDERS)})(?!\w)(?:{_DOT_ANY}{_TLD}(?!\w))*",
)
_EMAIL_RE = re.compile("|".join(f"(?:{p})" for p in _EMAIL_PATTERNS), _FLAGS)

# Numbers that look like phone numbers but are not: tried before the phone pattern at each position.
_NOT_AFTER = r"(?!\d|[.\-/]\d)"
_SAFE_NUMBERS = (
    # dates: 12.03.2024, 3/12/24, 2024-03-12
    rf"\d{{1,2}}[./-]\d{{1,2}}[./-](?:\d{{4}}|\d{{2}}){_NOT_AFTER}",
    rf"(?:19|20)\d{{2}}-\d{{1,2}}-\d{{1,2}}{_NOT_AFTER}",
    # times and time ranges: 18:30, 18.30 - 19.30, 9h30
    rf"(?:[01]?\d|2[0-3])[:.h][0-5]\d(?:[ \t]?[-–][ \t]?(?:[01]?\d|2[0-3])[:.h][0-5]\d)?{_NOT_AFTER}",
    # years and year ranges: 2024, 1998-2004, 2023/24
    r"(?:19|20)\d{2}(?:[ \t]?[-–/][ \t]?(?:(?:19|20)\d{2}|\d{2}))?(?!\d|[ \t.\-/(]?\d{3})",
    # amounts with a currency: 45 €, €1.200,50, 1 500 EUR, $ 30
    r"(?:[€$£]|eur|usd|chf|gbp)[ \t]?\d[\d.,  ]*\d(?!\d)",
    r"\d[\d.,  ]*[ \t]?(?:[€$£]|eur(?:o|os)?|usd|chf|gbp|dollars?)(?!\w)",
    # thousands separators: 1.000.000, 12 500 (not followed by more digits)
    r"[1-9]\d{0,2}(?:[.,  ]\d{3})+(?:[.,]\d{1,2})?(?!\d|[ \t.\-/]\d)",
)
_PHONE = r"(?:\+|\(\+?)?\d(?:[ \t  .\-/()–]{0,3}\d){5,}"
_NUMBER_RE = re.compile(
    r"(?<![\w+@/=$€£.,-])(?:(?P<safe>" + "|".join(_SAFE_NUMBERS) + r")|(?P<phone>" + _PHONE + r"))(?!\w)",
    _FLAGS,
)

_MAX_PASSES = 5


def _is_phone(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    prefixed = candidate.startswith(("+", "(+", "00"))
    return 7 <= digits <= (17 if prefixed else 15)


def _mask_once(text: str, placeholder: str) -> str:
    text = _LINK_RE.sub(placeholder, text)
    text = _EMAIL_RE.sub(placeholder, text)

    def number(match: re.Match[str]) -> str:
        phone = match.group("phone")
        if phone is not None and _is_phone(phone):
            return placeholder
        return match.group(0)

    return _NUMBER_RE.sub(number, text)


def mask_contact_details(text: str, placeholder: str = DEFAULT_PLACEHOLDER) -> str:
    """``text`` with email addresses, phone numbers and outside payment/contact links replaced by
    ``placeholder``. Idempotent: masking masked text changes nothing."""
    for _ in range(_MAX_PASSES):
        masked = _mask_once(text, placeholder)
        if masked == text:
            break
        text = masked
    return text


def has_contact_details(text: str) -> bool:
    """Whether masking would change ``text``."""
    return mask_contact_details(text, "\x00") != text
