"""The search document built from a tutor's live profile (pure)."""

from __future__ import annotations

import uuid

import pytest

from search.documents import document_from_profile, price_per_hour
from tests.search.corpus import NOW, TUTORS, corpus, live, profile_id


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ([{"minutes": 60, "price": 4000}, {"minutes": 30, "price": 2500}], 4000),
        ([{"minutes": 30, "price": 1500}, {"minutes": 90, "price": 5000}], 3333),  # tie: the longer, scaled
        ([{"minutes": 45, "price": 3000}], 4000),
        ([{"minutes": 50, "price": 1001}], 1201),  # 1201.2 rounds down
        ([{"minutes": 40, "price": 1001}], 1502),  # 1501.5 rounds half up
        ([{"minutes": 45, "price": 3000}, {"minutes": 75, "price": 4000}], 3200),
        ([], None),
        (None, None),
    ],
)
def test_price_for_an_hour(durations, expected):
    assert price_per_hour(durations) == expected


def test_document_holds_folded_text_facets_and_figures():
    anna = corpus()[0]
    assert anna.profile_id == profile_id("anna")
    assert anna.name == "Anna Müller"
    assert "anna muller" in anna.text and "piano" in anna.text and "berlin" in anna.text
    assert anna.facets == {
        "instrument": ("piano",),
        "genre": ("jazz", "classical"),
        "language": ("de", "en"),
        "level": ("beginner", "intermediate"),
        "age_group": ("adults", "teens"),
        "format": ("online", "in_person"),
        "country": ("DE",),
        "city": ("2950159",),
    }
    assert (anna.price_minor, anna.currency) == (4000, "EUR")
    assert (anna.rating, anna.review_count, anna.lessons_taught, anna.trial) == (4.8, 10, 120, True)
    assert (anna.lat, anna.lng) == (52.52437, 13.41053)
    assert anna.availability == ()
    assert 0 < anna.doc_key < 2**63


def test_online_tutor_without_a_city_has_no_place_facets():
    mia = next(d for d in corpus() if d.slug == "mia")
    assert mia.lat is None and mia.country is None and mia.city_id is None
    assert "country" not in mia.facets and "city" not in mia.facets
    assert mia.facets["format"] == ("online",)
    assert mia.rating is None and mia.price_minor == 5600


def test_levels_are_merged_over_instruments_and_names_come_from_the_lookup():
    row = next(r for r in TUTORS if r[0] == "yuki")
    doc = document_from_profile(
        uuid.uuid4(), uuid.uuid4(), "yuki", live(row), 0, 0, 0, NOW, term_name=lambda kind, slug: f"{kind}-{slug}x"
    )
    assert doc.facets["level"] == ("beginner", "intermediate")
    assert "instrument-pianox" in doc.text and "genre-classicalx" in doc.text


def test_fold_text_folds_exactly_like_the_places_fold():
    import random

    from marketplace.tutors.places import fold
    from search.documents import fold_text

    rng = random.Random(4)
    samples = ["Málaga Köln ß Øresund łódź José García ﬁ ①", "日本語 ｶﾀｶﾅ", "  İstanbul ǅ  ", "plain ascii"]
    samples += ["".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(2000)) for _ in range(5)]
    for sample in samples:
        assert fold_text(sample) == fold(sample)
