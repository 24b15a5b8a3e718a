"""The pure ledger: balanced transactions only, fee and refund arithmetic exact in minor units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.errors import CodedError
from payouts import ledger
from payouts.ledger import Posting

TUTOR = "t1"
amounts = st.integers(min_value=1, max_value=10_000_000)
percents = st.sampled_from([0, 5, 12.5, 15, 20, 33.3, 99])


def test_an_unbalanced_transaction_is_refused():
    with pytest.raises(CodedError) as exc:
        ledger.make_txn("x", "k", [Posting("a", 100, "EUR"), Posting("b", -99, "EUR")])
    assert exc.value.code == "ledger.unbalanced"


def test_balance_is_per_currency():
    with pytest.raises(CodedError):
        ledger.make_txn("x", "k", [Posting("a", 100, "EUR"), Posting("b", -100, "USD")])
    txn = ledger.make_txn(
        "x", "k", [Posting("a", 100, "EUR"), Posting("b", -100, "EUR"), Posting("a", 5, "JPY"), Posting("c", -5, "JPY")]
    )
    assert txn.currencies == {"EUR", "JPY"}


def test_floats_and_bad_currencies_are_refused():
    with pytest.raises(CodedError):
        ledger.make_txn("x", "k", [Posting("a", 1.5, "EUR"), Posting("b", -1.5, "EUR")])  # type: ignore[arg-type]
    with pytest.raises(CodedError):
        ledger.make_txn("x", "k", [Posting("a", 1, "eur"), Posting("b", -1, "eur")])


def test_payment_splits_into_tutor_payable_and_fee():
    txn = ledger.payment_txn(key="p", tutor_id=TUTOR, amount=4500, fee=ledger.platform_fee(4500, 15), currency="EUR")
    b = ledger.balances(txn.postings)
    assert b[(ledger.CASH, "EUR")] == 4500
    assert b[(ledger.REVENUE, "EUR")] == -675
    assert b[(ledger.tutor_payable(TUTOR), "EUR")] == -3825


def test_fee_rounds_half_up_and_stays_in_range():
    assert ledger.platform_fee(1001, 15) == 150  # 150.15
    assert ledger.platform_fee(1010, 15) == 152  # 151.5 -> 152
    assert ledger.platform_fee(999, 12.5) == 125  # 124.875
    assert ledger.platform_fee(0, 15) == 0


@given(amount=amounts, percent=percents)
def test_fee_is_within_the_amount(amount, percent):
    fee = ledger.platform_fee(amount, percent)
    assert 0 <= fee <= amount
    assert abs(fee - amount * percent / 100) <= 0.5 + 1e-6


@given(
    amount=amounts,
    percent=percents,
    steps=st.lists(st.integers(min_value=1, max_value=10_000_000), min_size=1, max_size=6),
    transfer=st.booleans(),
)
def test_any_sequence_of_money_movements_balances(amount, percent, steps, transfer):
    """Payment, partial refunds (cumulative totals), transfer and reversal: every transaction
    balances, the ledger as a whole is zero per currency, and the tutor never keeps more than their
    share of what was not refunded."""
    fee = ledger.platform_fee(amount, percent)
    txns = [ledger.payment_txn(key="pay", tutor_id=TUTOR, amount=amount, fee=fee, currency="EUR")]
    refunded = 0
    if transfer:
        owed = amount - fee
        if owed:
            txns.append(ledger.transfer_txn(key="tr", tutor_id=TUTOR, amount=owed, currency="EUR"))
    for i, step in enumerate(steps):
        total = min(amount, refunded + step)
        if total <= refunded:
            break
        tutor_part = ledger.tutor_share_of_refund(paid=amount, fee=fee, refunded_total=total) - (
            ledger.tutor_share_of_refund(paid=amount, fee=fee, refunded_total=refunded)
        )
        if transfer and tutor_part:
            txns.append(ledger.transfer_reversal_txn(key=f"rv{i}", tutor_id=TUTOR, amount=tutor_part, currency="EUR"))
        txns.append(
            ledger.refund_txn(
                key=f"rf{i}",
                tutor_id=TUTOR,
                tutor_part=tutor_part,
                platform_part=total - refunded - tutor_part,
                currency="EUR",
            )
        )
        refunded = total
    postings = [p for t in txns for p in t.postings]
    assert all(ledger.is_balanced(t.postings) for t in txns)
    assert ledger.sums_by_currency(postings) == {"EUR": 0}
    b = ledger.balances(postings)
    cash = b.get((ledger.CASH, "EUR"), 0)
    payable = -b.get((ledger.tutor_payable(TUTOR), "EUR"), 0)
    revenue = -b.get((ledger.REVENUE, "EUR"), 0) - b.get((ledger.REFUNDS, "EUR"), 0)
    # The platform keeps exactly what was not refunded, minus what it passed on to the tutor.
    transferred = (
        (amount - fee)
        - (ledger.tutor_share_of_refund(paid=amount, fee=fee, refunded_total=refunded) if transfer else 0)
        if transfer
        else 0
    )
    assert cash == amount - refunded - transferred
    assert payable + transferred == (amount - fee) - ledger.tutor_share_of_refund(
        paid=amount, fee=fee, refunded_total=refunded
    )
    assert revenue >= 0
    assert payable >= 0


def test_refund_beyond_the_payment_is_refused():
    with pytest.raises(CodedError):
        ledger.tutor_share_of_refund(paid=100, fee=15, refunded_total=101)
