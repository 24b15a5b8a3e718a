"""The attendance arithmetic and the settlement rule on many timelines (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lessons.attendance import decide, present_seconds

START = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # a DST night in Europe: irrelevant in UTC
END = START + timedelta(minutes=60)
NOW = END + timedelta(minutes=15)


def m(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def outcome(tutor, student, percent=50):
    return decide(tutor_stays=tutor, student_stays=student, slot_start=START, slot_end=END, now=NOW, percent=percent)


def test_both_whole_slot_is_delivered():
    d = outcome([(m(-5), m(61))], [(m(0), m(60))])
    assert d.outcome == "delivered" and d.tutor_seconds == 3600 and d.student_seconds == 3600


def test_late_join_still_half_is_delivered():
    assert outcome([(m(0), m(60))], [(m(30), m(60))]).outcome == "delivered"
    assert outcome([(m(0), m(60))], [(m(31), m(60))]).outcome == "student_absent"


def test_reconnects_overlap_and_are_merged_not_double_counted():
    student = [(m(0), m(10)), (m(9), m(20)), (m(19), m(25)), (m(25), m(29))]  # 29 minutes in total
    d = outcome([(m(0), m(60))], student)
    assert d.student_seconds == 29 * 60 and d.outcome == "student_absent"
    assert outcome([(m(0), m(60))], [*student, (m(40), m(41))]).outcome == "delivered"


def test_leaving_early_tutor_is_tutor_absent():
    assert outcome([(m(0), m(20))], [(m(0), m(60))]).outcome == "tutor_absent"


def test_both_absent_is_not_settled_automatically():
    assert outcome([], []).outcome == "both_absent"
    assert outcome([(m(0), m(5))], [(m(50), m(60))]).outcome == "both_absent"


def test_time_outside_the_slot_does_not_count():
    d = outcome([(m(-60), m(0)), (m(60), m(120))], [(m(0), m(60))])
    assert d.tutor_seconds == 0 and d.outcome == "tutor_absent"


def test_open_stay_counts_until_now():
    assert present_seconds([(m(10), None)], slot_start=START, slot_end=END, now=m(40)) == 30 * 60


def test_threshold_is_configurable():
    assert outcome([(m(0), m(60))], [(m(0), m(40))], percent=75).outcome == "student_absent"
    assert outcome([(m(0), m(60))], [(m(0), m(45))], percent=75).outcome == "delivered"


stays = st.lists(
    st.tuples(st.integers(-30, 90), st.integers(0, 90)).map(lambda t: (m(t[0]), m(t[0] + t[1]))), max_size=8
)


@given(stays, st.permutations(range(8)))
def test_presence_is_order_independent_and_bounded(items, order):
    shuffled = [items[i] for i in order if i < len(items)]
    a = present_seconds(items, slot_start=START, slot_end=END, now=NOW)
    b = present_seconds(shuffled, slot_start=START, slot_end=END, now=NOW)
    assert a == b and 0 <= a <= 3600
    assert present_seconds(items + items, slot_start=START, slot_end=END, now=NOW) == a


@given(stays, stays)
def test_more_presence_never_turns_delivered_into_absent(tutor, student):
    before = outcome(tutor, student).outcome
    after = outcome([*tutor, (m(0), m(60))], [*student, (m(0), m(60))]).outcome
    assert after == "delivered"
    if before == "delivered":
        assert after == "delivered"
