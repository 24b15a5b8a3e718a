"""Bad input to the onboarding steps gets clear messages, and nothing is stored."""

from marketplace.tutors.schemas import clean_basics, clean_place, clean_pricing, clean_teaching, parse_price


def test_prices_of_zero_negative_absurd_or_malformed_are_refused():
    for raw in ("0", "-10", "1000000", "abc", "45.555", "1e9", "NaN", ""):
        _, errors = clean_pricing({"currency": ["EUR"], "offer_60": ["1"], "price_60": [raw]})
        assert "price_60" in errors, raw
    fragment, errors = clean_pricing(
        {
            "currency": ["EUR"],
            "offer_30": ["1"],
            "price_30": ["25,50"],
            "trial": ["1"],
            "trial_minutes": ["30"],
            "trial_price": ["10"],
        }
    )
    assert errors == {}
    assert fragment == {
        "currency": "EUR",
        "durations": [{"minutes": 30, "price": 2550}],
        "trial": {"minutes": 30, "price": 1000},
    }


def test_currencies_without_minor_units_and_unknown_currencies():
    assert parse_price("5000", "JPY") == 5000
    assert parse_price("50.5", "JPY") is None
    _, errors = clean_pricing({"currency": ["XXX"], "offer_60": ["1"], "price_60": ["45"]})
    assert "currency" in errors
    _, errors = clean_pricing({"currency": ["EUR"]})
    assert "durations" in errors


def test_unknown_taxonomy_ids_are_refused():
    _, errors = clean_teaching(
        {"instrument": ["piano", "theremin-9000"], "age_group": ["adults"]}, instruments={"piano"}, genres={"jazz"}
    )
    assert "instrument" in errors
    _, errors = clean_teaching(
        {"instrument": ["piano"], "levels_piano": ["grandmaster"], "age_group": ["adults"]},
        instruments={"piano"},
        genres=set(),
    )
    assert "levels_piano" in errors
    _, errors = clean_place({"language": ["xx"], "online": ["1"]}, languages={"en"})
    assert "language" in errors


def test_html_in_the_headline_is_refused_and_in_person_needs_a_real_city():
    _, errors = clean_basics({"display_name": ["Ana"], "headline": ["<script>alert(1)</script>"]})
    assert "headline" in errors
    _, errors = clean_place({"language": ["en"], "in_person": ["1"], "city_id": ["999999999"]}, languages={"en"})
    assert "city_id" in errors
    _, errors = clean_place(
        {"language": ["en"], "in_person": ["1"], "city_id": ["3117735"], "travel_radius_km": ["5000"]}, languages={"en"}
    )
    assert "travel_radius_km" in errors
    fragment, errors = clean_place(
        {"language": ["en"], "in_person": ["1"], "city_id": ["3117735"], "travel_radius_km": ["15"]}, languages={"en"}
    )
    assert errors == {} and fragment["city"]["name"] == "Madrid" and fragment["city"]["country"] == "ES"
