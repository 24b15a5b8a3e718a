"""Read side of payments: the tutor's earnings, the student's payment history, the admin finance
summary. Sums come from the ledger (and the provider's payouts), grouped in the database."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from payouts import ledger
from payouts.models import LedgerEntry, LedgerTransaction, Payment, PaymentStatus, ProviderPayout
from scheduling.models import Booking


def _month(session: AsyncSession, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


@dataclass
class Earnings:
    currency: str
    pending: int = 0  # owed for paid lessons, not yet transferred
    available: int = 0  # transferred to the tutor's account, not yet paid out to the bank
    paid: int = 0  # paid out to the bank
    months: dict[str, dict[str, int]] = field(default_factory=dict)


async def tutor_earnings(session: AsyncSession, *, tutor_id: uuid.UUID) -> list[Earnings]:
    account = ledger.tutor_payable(tutor_id)
    out: dict[str, Earnings] = {}

    def get(currency: str) -> Earnings:
        return out.setdefault(currency, Earnings(currency=currency))

    month = _month(session, LedgerTransaction.occurred_at)
    rows = await session.execute(
        select(month, LedgerTransaction.kind, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account == account)
        .group_by(month, LedgerTransaction.kind, LedgerEntry.currency)
    )
    transferred: dict[str, int] = defaultdict(int)
    for m, kind, currency, total in rows.all():
        e = get(currency)
        e.pending -= int(total)  # the payable is a credit balance
        bucket = e.months.setdefault(m, {"earned": 0, "refunded": 0, "transferred": 0})
        if kind in ("payment", "package_spend"):  # a lesson paid by card or with a package credit
            bucket["earned"] += -int(total)
        elif kind in ("refund", "package_credit_return"):
            bucket["refunded"] += int(total)
        elif kind == "transfer":
            bucket["transferred"] += int(total)
            transferred[currency] += int(total)
        elif kind == "transfer_reversal":
            bucket["transferred"] += int(total)
            transferred[currency] += int(total)
    payouts = await session.execute(
        select(ProviderPayout.currency, func.sum(ProviderPayout.amount))
        .where(ProviderPayout.tutor_id == tutor_id, ProviderPayout.status == "paid")
        .group_by(ProviderPayout.currency)
    )
    for currency, total in payouts.all():
        get(currency).paid = int(total)
    for currency, e in out.items():
        e.available = max(0, transferred[currency] - e.paid)
        e.months = dict(sorted(e.months.items(), reverse=True))
    return sorted(out.values(), key=lambda e: e.currency)


async def tutor_payouts(session: AsyncSession, *, tutor_id: uuid.UUID, limit: int = 50) -> list[ProviderPayout]:
    rows = await session.execute(
        select(ProviderPayout)
        .where(ProviderPayout.tutor_id == tutor_id)
        .order_by(ProviderPayout.created_at.desc())
        .limit(limit)
    )
    return list(rows.scalars())


async def tutor_earnings_csv(session: AsyncSession, *, tutor_id: uuid.UUID) -> str:
    """Every movement of the tutor's payable: date, kind, booking, currency, amount (minor units and
    decimal, positive = owed to the tutor)."""
    from babel.numbers import get_currency_precision

    rows = await session.execute(
        select(
            LedgerTransaction.occurred_at,
            LedgerTransaction.kind,
            LedgerTransaction.booking_id,
            LedgerEntry.currency,
            LedgerEntry.amount,
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account == ledger.tutor_payable(tutor_id))
        .order_by(LedgerTransaction.occurred_at, LedgerEntry.id)
    )
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["date_utc", "kind", "booking_id", "currency", "amount_minor", "amount"])
    for at, kind, booking_id, currency, amount in rows.all():
        digits = get_currency_precision(currency)
        value = -int(amount)
        writer.writerow(
            [
                at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                kind,
                str(booking_id or ""),
                currency,
                value,
                f"{value / 10**digits:.{digits}f}" if digits else str(value),
            ]
        )
    return buf.getvalue()


@dataclass
class PaymentRow:
    payment: Payment
    booking: Booking
    tutor_name: str


async def student_payments(session: AsyncSession, *, student_id: uuid.UUID, limit: int = 100) -> list[PaymentRow]:
    rows = await session.execute(
        select(Payment, Booking, User.display_name)
        .join(Booking, Booking.id == Payment.booking_id)
        .join(User, User.id == Payment.tutor_id)
        .where(Payment.student_id == student_id, Payment.paid_amount > 0)
        .order_by(Payment.paid_at.desc())
        .limit(limit)
    )
    return [PaymentRow(payment=p, booking=b, tutor_name=name) for p, b, name in rows.all()]


async def payment_receipt(session: AsyncSession, *, payment_id: uuid.UUID, student_id: uuid.UUID) -> PaymentRow | None:
    row = (
        await session.execute(
            select(Payment, Booking, User.display_name)
            .join(Booking, Booking.id == Payment.booking_id)
            .join(User, User.id == Payment.tutor_id)
            .where(Payment.id == payment_id, Payment.student_id == student_id, Payment.paid_amount > 0)
        )
    ).first()
    return PaymentRow(payment=row[0], booking=row[1], tutor_name=row[2]) if row else None


@dataclass
class FinanceRow:
    currency: str
    month: str
    volume: int = 0
    fees: int = 0
    refunds: int = 0
    transfers: int = 0
    reversals: int = 0


async def finance_summary(session: AsyncSession) -> tuple[list[FinanceRow], dict[str, int], dict[str, int]]:
    """Per currency and month: volume (payments in), fees, refunds out, transfers out, reversals in;
    plus pending transfers (what tutors are owed) and unapplied money per currency, now."""
    month = _month(session, LedgerTransaction.occurred_at)
    rows = await session.execute(
        select(month, LedgerTransaction.kind, LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account.in_((ledger.CASH, ledger.REVENUE)))
        .group_by(month, LedgerTransaction.kind, LedgerEntry.account, LedgerEntry.currency)
    )
    table: dict[tuple[str, str], FinanceRow] = {}
    for m, kind, account, currency, total in rows.all():
        row = table.setdefault((currency, m), FinanceRow(currency=currency, month=m))
        total = int(total)
        if account == ledger.REVENUE:
            row.fees += -total
        elif kind in ("payment", "payment_unapplied", "package_purchase"):
            row.volume += total
        elif kind in ("refund", "refund_unapplied", "package_refund"):
            row.refunds += -total
        elif kind == "transfer":
            row.transfers += -total
        elif kind == "transfer_reversal":
            row.reversals += total
    pending: dict[str, int] = defaultdict(int)
    unapplied: dict[str, int] = defaultdict(int)
    balances = await session.execute(
        select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .where((LedgerEntry.account.startswith("tutor_payable:")) | (LedgerEntry.account == ledger.UNAPPLIED))
        .group_by(LedgerEntry.account, LedgerEntry.currency)
    )
    for account, currency, total in balances.all():
        if account == ledger.UNAPPLIED:
            unapplied[currency] += -int(total)
        else:
            pending[currency] += -int(total)
    ordered = sorted(table.values(), key=lambda r: (r.currency, r.month), reverse=False)
    ordered.sort(key=lambda r: r.month, reverse=True)
    return ordered, dict(pending), dict(unapplied)


async def payments_needing_attention(session: AsyncSession, *, limit: int = 50) -> list[Payment]:
    rows = await session.execute(
        select(Payment)
        .where(
            (Payment.status == PaymentStatus.unapplied)
            | (Payment.refund_requested > Payment.refunded_amount)
            | (Payment.provider_dispute_id.is_not(None))
        )
        .order_by(Payment.updated_at.desc())
        .limit(limit)
    )
    return list(rows.scalars())
