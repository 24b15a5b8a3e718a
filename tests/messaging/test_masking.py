"""Masking of contact details: table-driven cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.messaging.masking import has_contact_details, mask_contact_details

P = "[contact details hidden until your first paid lesson]"


def mask(text: str) -> str:
    return mask_contact_details(text, P)


MASKED = [
    # email addresses
    ("Write to anna.m+music@example.com please", "Write to [P] please"),
    ("ANNA@EXAMPLE.CO.UK", "[P]"),
    ("mail: anna @ gmail.com.", "mail: [P]."),
    ("anna(at)example(dot)com", "[P]"),
    ("anna [at] example [dot] de", "[P]"),
    ("anna {at} example.org", "[P]"),
    ("anna at example dot com", "[P]"),
    ("write to anna.smith at gmail dot com tomorrow", "write to [P] tomorrow"),
    ("reach me: anna at gmail", "reach me: [P]"),
    ("anna at gmx.de", "[P]"),
    # phone numbers
    ("Call +49 170 1234567", "Call [P]"),
    ("Call +49 (0)170 123 45 67 today", "Call [P] today"),
    ("0049 170 1234567", "[P]"),
    ("0170-123 45 67", "[P]"),
    ("0170/1234567", "[P]"),
    ("(030) 123 456 78", "[P]"),
    ("+1 (555) 123-4567", "[P]"),
    ("555-123-4567", "[P]"),
    ("555.123.4567", "[P]"),
    ("06 12 34 56 78", "[P]"),
    ("06.12.34.56.78", "[P]"),
    ("Tel:+41791234567", "Tel:[P]"),
    ("01701234567", "[P]"),
    ("my number is 079 123 45 67, call after 18:30", "my number is [P], call after 18:30"),
    # outside payment and contact links
    ("pay me at https://paypal.me/anna123 thanks", "pay me at [P] thanks"),
    ("paypal.me/anna", "[P]"),
    ("https://www.paypal.com/paypalme/anna?locale=de", "[P]"),
    ("venmo.com/u/anna", "[P]"),
    ("https://cash.app/$anna", "[P]"),
    ("revolut.me/anna", "[P]"),
    ("https://wise.com/pay/me/annam", "[P]"),
    ("buymeacoffee.com/anna", "[P]"),
    ("https://ko-fi.com/anna", "[P]"),
    ("patreon.com/anna", "[P]"),
    ("https://wa.me/491701234567", "[P]"),
    ("https://api.whatsapp.com/send?phone=491701234567", "[P]"),
    ("https://chat.whatsapp.com/AbCdEf", "[P]"),
    ("Telegram: t.me/anna_music", "Telegram: [P]"),
    ("HTTPS://T.ME/ANNA", "[P]"),
    ("paypal dot me slash anna", "[P] slash anna"),
    ("see (paypal.me/anna).", "see ([P])."),
]

UNCHANGED = [
    "See you in 2024!",
    "I played from 1998-2004 and again since 2019 – 2023.",
    "The lesson costs 45 € or €45 or 45 EUR or $ 30.",
    "A package of 10 lessons is 1.200,50 € (or 1 500 EUR).",
    "Let's meet at 18:30, or 18.30 - 19.30, or 9h30.",
    "On 12.03.2024 at 18:30 in room 12.",
    "2024-03-12 works for me, so does 3/12/24.",
    "I have 3 students and 12 songs; page 245; bar 64.",
    "The population is 1.000.000 and 12 500 people.",
    "Postcode 10115 Berlin",
    "Look at this. Then we meet at the school.",
    "I'll be at home dot dot dot",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "Meet me at the café at 5.30pm",
    "Tempo 120 bpm, 4/4 time, 3/4 waltz",
    "Opus 27 No. 2, BWV 846",
    "I don't.me",
    "@anna on the forum",
    "version 2.1.3",
    "",
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_contact_details_are_masked(text: str, expected: str):
    assert mask(text) == expected.replace("[P]", P)
    assert has_contact_details(text)


@pytest.mark.parametrize("text", UNCHANGED)
def test_ordinary_text_and_numbers_are_left_alone(text: str):
    assert mask(text) == text
    assert not has_contact_details(text)


def test_several_details_in_one_message_are_all_masked():
    text = "Mail anna@example.com or call +49 170 1234567 or pay paypal.me/anna. The lesson is 45 € at 18:30."
    assert mask(text) == f"Mail {P} or call {P} or pay {P}. The lesson is 45 € at 18:30."


def test_line_breaks_and_markup_are_kept_as_text():
    text = "Hi!\n<b>bold</b>\nMy mail: a@b.de\nBye"
    assert mask(text) == f"Hi!\n<b>bold</b>\nMy mail: {P}\nBye"


def test_long_adversarial_input_is_masked_quickly():
    import time

    for text in ("1 " * 2000, "a." * 2000, "a at b dot " * 400, "(" * 4000, "paypal dot " * 400, "a@" * 2000):
        began = time.perf_counter()
        mask(text)
        assert time.perf_counter() - began < 1.0, text[:20]


def test_default_placeholder_without_translation():
    assert mask_contact_details("a@b.de") == "[contact details hidden]"


PIECES = ["@", " at ", "(at)", "[dot]", " dot ", ".", "-", "/", "+", "(", ")", " ", "\n", "0", "49", "170"]
PIECES += ["1234567", "gmail", "com", "paypal", "me", "t", "wa", "https://", "€", ":", "18", "2024", "anna", "x"]
contact_like = st.sampled_from(PIECES)
texty = st.one_of(st.text(max_size=200), st.lists(contact_like, max_size=40).map("".join))


@settings(max_examples=400, deadline=None)
@given(texty)
def test_masking_is_idempotent_and_never_raises(text: str):
    once = mask(text)
    assert mask(once) == once
    assert isinstance(has_contact_details(text), bool)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",), blacklist_characters="@.:/"), max_size=200))
def test_text_without_digits_at_signs_or_dots_is_never_changed(text: str):
    assert mask(text) == text
