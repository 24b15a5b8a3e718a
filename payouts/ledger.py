"""The double-entry ledger, pure: postings, balanced transactions, balances, fee and refund
arithmetic. No I/O; the database layer (``payouts.models``) stores what these functions build.

Amounts are integer minor units of one ISO currency. A posting's amount is signed: positive is a
debit, negative a credit. A transaction is balanced when, for every currency it touches, its
postings sum to zero; an unbalanced transaction is never built.

Accounts (``account`` strings):

* ``cash_at_provider``: money the platform holds at the payment provider (asset, debit balance);
* ``tutor_payable:{tutor_id}``: what the platform owes a tutor for paid lessons (liability);
* ``platform_revenue``: the platform's fee (revenue, credit balance);
* ``refunds``: the platform's share of refunds (contra-revenue, debit balance), and what the
  platform loses to a lost provider dispute (chargeback) it cannot pass on to the tutor;
* ``unapplied_funds``: money received that cannot be applied to a booking (a hold that lapsed, an
  amount that does not match) until it is refunded (liability);
* ``package_credit:{package_id}``: a lesson package's unearned credit, owed to the student as
  lessons (liability): credited when the package is paid, debited when a credit pays a lesson
  (that lesson's value moves to the tutor's payable and the fee, exactly like a card payment),
  when unused credits are refunded, and when they expire;
* ``package_breakage``: the value of expired, unused package credits (platform revenue).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from marketplace.errors import CodedError

CASH = "cash_at_provider"
REVENUE = "platform_revenue"
REFUNDS = "refunds"
UNAPPLIED = "unapplied_funds"
BREAKAGE = "package_breakage"


def tutor_payable(tutor_id: object) -> str:
    return f"tutor_payable:{tutor_id}"


def package_credit(package_id: object) -> str:
    return f"package_credit:{package_id}"


@dataclass(frozen=True)
class Posting:
    account: str
    amount: int  # minor units; debit > 0, credit < 0
    currency: str


@dataclass(frozen=True)
class Txn:
    kind: str
    key: str  # idempotency key: one transaction per key, ever
    postings: tuple[Posting, ...]

    @property
    def currencies(self) -> set[str]:
        return {p.currency for p in self.postings}


def _check_currency(currency: str) -> str:
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise CodedError("ledger.bad_currency", currency=currency)
    return currency


def sums_by_currency(postings: Iterable[Posting]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for p in postings:
        sums[p.currency] += p.amount
    return dict(sums)


def is_balanced(postings: Iterable[Posting]) -> bool:
    return all(total == 0 for total in sums_by_currency(postings).values())


def make_txn(kind: str, key: str, postings: Iterable[Posting]) -> Txn:
    """A balanced transaction; zero postings are dropped. Raises ``CodedError`` otherwise."""
    kept = []
    for p in postings:
        if not isinstance(p.amount, int) or isinstance(p.amount, bool):
            raise CodedError("ledger.not_integer", account=p.account)
        _check_currency(p.currency)
        if p.amount:
            kept.append(p)
    if not kept:
        raise CodedError("ledger.empty", kind=kind)
    if not is_balanced(kept):
        raise CodedError("ledger.unbalanced", kind=kind, sums=sums_by_currency(kept))
    return Txn(kind=kind, key=key, postings=tuple(kept))


def balances(postings: Iterable[Posting]) -> dict[tuple[str, str], int]:
    """Balance per (account, currency): debits minus credits."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for p in postings:
        out[(p.account, p.currency)] += p.amount
    return dict(out)


# ---- arithmetic -------------------------------------------------------------------------------


def platform_fee(amount: int, percent: int | float) -> int:
    """The platform's fee on ``amount``: ``percent`` of it, rounded half up, within [0, amount]."""
    if amount < 0:
        raise CodedError("ledger.negative_amount", amount=amount)
    # Work in hundredths of a percent so that settings like 12.5 stay exact.
    bp = round(float(percent) * 100)
    fee = (amount * bp * 2 + 10_000) // 20_000
    return max(0, min(amount, fee))


def tutor_share_of_refund(*, paid: int, fee: int, refunded_total: int) -> int:
    """The tutor's part of ``refunded_total`` (cumulative) refunded from a payment of ``paid`` with
    ``fee``: proportional to the tutor's share, rounded down, so that the platform part is never
    negative and successive partial refunds add up exactly."""
    if paid <= 0:
        return 0
    if not 0 <= refunded_total <= paid:
        raise CodedError("ledger.refund_out_of_range", refunded=refunded_total, paid=paid)
    return refunded_total * (paid - fee) // paid


# ---- transaction builders -------------------------------------------------------------------


def payment_txn(*, key: str, tutor_id: object, amount: int, fee: int, currency: str) -> Txn:
    """A student's payment for a booking: cash in; the tutor's share is owed; the fee is revenue."""
    if not 0 <= fee <= amount:
        raise CodedError("ledger.bad_fee", fee=fee, amount=amount)
    return make_txn(
        "payment",
        key,
        [
            Posting(CASH, amount, currency),
            Posting(tutor_payable(tutor_id), -(amount - fee), currency),
            Posting(REVENUE, -fee, currency),
        ],
    )


def unapplied_payment_txn(*, key: str, amount: int, currency: str) -> Txn:
    """Money received that no booking can take (hold lapsed, amount mismatch): owed back."""
    return make_txn("payment_unapplied", key, [Posting(CASH, amount, currency), Posting(UNAPPLIED, -amount, currency)])


def unapplied_refund_txn(*, key: str, amount: int, currency: str) -> Txn:
    return make_txn("refund_unapplied", key, [Posting(UNAPPLIED, amount, currency), Posting(CASH, -amount, currency)])


def refund_txn(*, key: str, tutor_id: object, tutor_part: int, platform_part: int, currency: str) -> Txn:
    """A refund to the student: the tutor's part leaves what is owed to the tutor, the platform's
    part is booked against refunds; the cash goes back."""
    if tutor_part < 0 or platform_part < 0:
        raise CodedError("ledger.negative_refund", tutor_part=tutor_part, platform_part=platform_part)
    return make_txn(
        "refund",
        key,
        [
            Posting(tutor_payable(tutor_id), tutor_part, currency),
            Posting(REFUNDS, platform_part, currency),
            Posting(CASH, -(tutor_part + platform_part), currency),
        ],
    )


def transfer_txn(*, key: str, tutor_id: object, amount: int, currency: str) -> Txn:
    """The tutor's share leaves the platform's balance for the tutor's connected account."""
    return make_txn(
        "transfer", key, [Posting(tutor_payable(tutor_id), amount, currency), Posting(CASH, -amount, currency)]
    )


def transfer_reversal_txn(*, key: str, tutor_id: object, amount: int, currency: str) -> Txn:
    """Money pulled back from the tutor's connected account (before a refund after the transfer)."""
    return make_txn(
        "transfer_reversal",
        key,
        [Posting(CASH, amount, currency), Posting(tutor_payable(tutor_id), -amount, currency)],
    )


def dispute_lost_txn(*, key: str, tutor_id: object, tutor_part: int, platform_part: int, currency: str) -> Txn:
    """A provider dispute (chargeback) of a lesson's charge was lost: the bank took back
    ``tutor_part + platform_part`` from the platform's balance. The tutor's part (not transferred
    yet, so never to be) leaves what is owed to the tutor; the platform's part (its fee, or the
    whole remainder when the tutor was paid already) is booked against refunds. Kind
    ``dispute_lost``, not ``refund``: the provider shows no refund on the charge."""
    if tutor_part < 0 or platform_part < 0:
        raise CodedError("ledger.negative_refund", tutor_part=tutor_part, platform_part=platform_part)
    return make_txn(
        "dispute_lost",
        key,
        [
            Posting(tutor_payable(tutor_id), tutor_part, currency),
            Posting(REFUNDS, platform_part, currency),
            Posting(CASH, -(tutor_part + platform_part), currency),
        ],
    )


def unapplied_dispute_lost_txn(*, key: str, amount: int, currency: str) -> Txn:
    """A lost dispute of money no booking took (owed back anyway): the bank paid it back."""
    return make_txn("dispute_lost", key, [Posting(UNAPPLIED, amount, currency), Posting(CASH, -amount, currency)])


# ---- lesson packages ---------------------------------------------------------------------------


def package_price(*, unit_price: int, lessons: int, discount_percent: int) -> int:
    """``lessons`` lessons of ``unit_price`` at ``discount_percent`` off, rounded *down* to a whole
    minor unit (in the student's favour): 5 x 33.33 at 15 % = 141.65 (141.6525)."""
    if unit_price < 0 or lessons <= 0 or not 0 <= discount_percent <= 100:
        raise CodedError("ledger.bad_package", unit_price=unit_price, lessons=lessons, discount=discount_percent)
    return unit_price * lessons * (100 - discount_percent) // 100


def credit_value(*, remaining_value: int, credits_left: int) -> int:
    """What one credit is worth now: an even share of what the package still holds, rounded down;
    the last credit takes the rest, so the credits add up to exactly what was paid."""
    if credits_left <= 0:
        raise CodedError("ledger.no_credit")
    return remaining_value // credits_left


def package_purchase_txn(*, key: str, package_id: object, amount: int, currency: str) -> Txn:
    """A paid package: cash in, owed to the student as lessons until credits are spent."""
    return make_txn(
        "package_purchase",
        key,
        [Posting(CASH, amount, currency), Posting(package_credit(package_id), -amount, currency)],
    )


def package_spend_txn(*, key: str, package_id: object, tutor_id: object, value: int, fee: int, currency: str) -> Txn:
    """A credit pays a lesson: its value leaves the package and is split like a card payment."""
    if not 0 <= fee <= value:
        raise CodedError("ledger.bad_fee", fee=fee, amount=value)
    return make_txn(
        "package_spend",
        key,
        [
            Posting(package_credit(package_id), value, currency),
            Posting(tutor_payable(tutor_id), -(value - fee), currency),
            Posting(REVENUE, -fee, currency),
        ],
    )


def package_credit_return_txn(
    *, key: str, package_id: object, tutor_id: object, tutor_part: int, platform_part: int, currency: str
) -> Txn:
    """A cancelled lesson refunded in full gives its credit back: the tutor's part and the fee (as a
    refund, like a card refund) return to the package."""
    if tutor_part < 0 or platform_part < 0:
        raise CodedError("ledger.negative_refund", tutor_part=tutor_part, platform_part=platform_part)
    return make_txn(
        "package_credit_return",
        key,
        [
            Posting(tutor_payable(tutor_id), tutor_part, currency),
            Posting(REFUNDS, platform_part, currency),
            Posting(package_credit(package_id), -(tutor_part + platform_part), currency),
        ],
    )


def package_refund_txn(*, key: str, package_id: object, amount: int, currency: str) -> Txn:
    """Unused credits refunded to the student (pro rata): the package's remaining value goes back."""
    return make_txn(
        "package_refund", key, [Posting(package_credit(package_id), amount, currency), Posting(CASH, -amount, currency)]
    )


def package_expiry_txn(*, key: str, package_id: object, amount: int, currency: str) -> Txn:
    """Credits unused when the package expires: breakage, the platform's revenue."""
    return make_txn(
        "package_expiry",
        key,
        [Posting(package_credit(package_id), amount, currency), Posting(BREAKAGE, -amount, currency)],
    )
