"""Property tests of the cancellation refund arithmetic (``scheduling.bookings.refund_for``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduling.bookings import refund_for
from scheduling.models import FREE_CANCEL_HOURS, LATE_REFUND_PERCENTS

START = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
prices = st.integers(min_value=0, max_value=10_000_000)
hours = st.sampled_from(FREE_CANCEL_HOURS)
percents = st.sampled_from(LATE_REFUND_PERCENTS) | st.integers(min_value=0, max_value=100)
before = st.integers(min_value=-3600 * 24, max_value=3600 * 24 * 90).map(lambda s: timedelta(seconds=s))


@given(prices, before, hours, percents, st.sampled_from(["student", "tutor", "system"]))
def test_refund_is_never_negative_nor_more_than_the_price(price, ahead, free, percent, by):
    assert 0 <= refund_for(price, START, START - ahead, free, percent, by) <= price


@given(prices, before, hours, percents)
def test_tutor_and_system_cancellations_always_refund_in_full(price, ahead, free, percent):
    assert refund_for(price, START, START - ahead, free, percent, "tutor") == price
    assert refund_for(price, START, START - ahead, free, percent, "system") == price


@given(prices, hours, percents, st.integers(min_value=0, max_value=3600 * 24 * 90))
def test_students_cancelling_in_the_free_window_get_everything(price, free, percent, extra):
    cancelled = START - timedelta(hours=free) - timedelta(seconds=extra)
    assert refund_for(price, START, cancelled, free, percent, "student") == price


@given(prices, hours, percents, st.integers(min_value=1, max_value=3600 * 24 * 2))
def test_late_student_cancellation_gets_the_percentage_rounded_up(price, free, percent, late_by):
    cancelled = START - timedelta(hours=free) + timedelta(seconds=late_by)
    refund = refund_for(price, START, cancelled, free, percent, "student")
    exact = price * percent / 100
    assert exact <= refund < exact + 1  # rounded up to a whole minor unit, in the student's favour
    assert refund * 100 >= price * percent


@given(prices, hours, percents, before, before)
def test_cancelling_earlier_never_refunds_less(price, free, percent, a, b):
    early, late = max(a, b), min(a, b)
    assert refund_for(price, START, START - early, free, percent, "student") >= refund_for(
        price, START, START - late, free, percent, "student"
    )


def test_examples():
    assert refund_for(1501, START, START - timedelta(hours=1), 24, 50, "student") == 751
    assert refund_for(4500, START, START - timedelta(hours=24), 24, 0, "student") == 4500
    assert refund_for(4500, START, START - timedelta(hours=23, minutes=59), 24, 0, "student") == 0
