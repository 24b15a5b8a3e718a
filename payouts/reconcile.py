"""Reconciliation: the ledger against itself (every transaction balanced, the books sum to zero per
currency) and against the provider's objects (charges, refunds, transfers, reversals), listing every
difference. ``marketplace payouts reconcile`` prints them; nothing is changed."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from payouts import ledger
from payouts.models import LedgerEntry, LedgerTransaction, Payment, PaymentStatus
from payouts.providers import PaymentProvider, ProviderError


@dataclass(frozen=True)
class Difference:
    what: str  # e.g. "charge.amount", "refunds", "transfer.amount", "ledger.unbalanced"
    ref: str  # booking id, transaction id or currency
    ledger: int | str | None
    provider: int | str | None

    def __str__(self) -> str:
        return f"{self.what:<22} {self.ref:<40} ledger={self.ledger} provider={self.provider}"


@dataclass
class Report:
    differences: list[Difference]
    transactions: int
    payments: int
    totals: dict[str, int]  # books per currency (must all be 0)

    @property
    def ok(self) -> bool:
        return not self.differences


async def ledger_check(session: AsyncSession) -> tuple[list[Difference], int, dict[str, int]]:
    """Balanced transactions and books, by aggregate queries (no row-by-row work)."""
    diffs: list[Difference] = []
    unbalanced = await session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .group_by(LedgerEntry.transaction_id, LedgerEntry.currency)
        .having(func.sum(LedgerEntry.amount) != 0)
    )
    for txn_id, currency, total in unbalanced.all():
        diffs.append(Difference("ledger.unbalanced", f"{txn_id} {currency}", int(total), 0))
    totals = {
        c: int(t)
        for c, t in (
            await session.execute(
                select(LedgerEntry.currency, func.sum(LedgerEntry.amount)).group_by(LedgerEntry.currency)
            )
        ).all()
    }
    for currency, total in totals.items():
        if total:
            diffs.append(Difference("ledger.books", currency, total, 0))
    count = await session.scalar(select(func.count()).select_from(LedgerTransaction)) or 0
    return diffs, int(count), totals


async def _ledger_by_booking(session: AsyncSession) -> dict[Any, dict[str, int]]:
    """Per booking: cash in (payments), cash out (refunds, transfers, lost disputes), cash back
    (reversals)."""
    rows = await session.execute(
        select(LedgerTransaction.booking_id, LedgerTransaction.kind, func.sum(LedgerEntry.amount))
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.account == ledger.CASH, LedgerTransaction.booking_id.is_not(None))
        .group_by(LedgerTransaction.booking_id, LedgerTransaction.kind)
    )
    out: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for booking_id, kind, total in rows.all():
        total = int(total)
        if kind in ("payment", "payment_unapplied"):
            out[booking_id]["paid"] += total
        elif kind in ("refund", "refund_unapplied"):
            out[booking_id]["refunded"] += -total
        elif kind == "transfer":
            out[booking_id]["transferred"] += -total
        elif kind == "transfer_reversal":
            out[booking_id]["reversed"] += total
        elif kind == "dispute_lost":
            out[booking_id]["lost"] += -total
    return out


async def reconcile(session: AsyncSession, provider: PaymentProvider, *, concurrency: int = 8) -> Report:
    diffs, count, totals = await ledger_check(session)
    books = await _ledger_by_booking(session)
    payments = list(
        (
            await session.execute(
                select(Payment).where(
                    (Payment.paid_amount > 0) | (Payment.status.in_((PaymentStatus.open, PaymentStatus.processing)))
                )
            )
        ).scalars()
    )
    semaphore = asyncio.Semaphore(concurrency)

    async def check_transfer(payment: Payment, ref: str, mine: dict[str, int]) -> list[Difference]:
        found: list[Difference] = []
        if payment.transfer_id:
            transfer = await provider.retrieve_transfer(payment.transfer_id)
            if int(transfer.get("amount") or 0) != mine.get("transferred", 0):
                found.append(Difference("transfer.amount", ref, mine.get("transferred", 0), transfer.get("amount")))
            if int(transfer.get("amount_reversed") or 0) != mine.get("reversed", 0):
                found.append(
                    Difference(
                        "transfer.amount_reversed", ref, mine.get("reversed", 0), transfer.get("amount_reversed")
                    )
                )
        elif mine.get("transferred"):
            found.append(Difference("transfer.missing", ref, mine.get("transferred"), None))
        return found

    async def check(payment: Payment) -> list[Difference]:
        ref = str(payment.booking_id)
        mine = books.get(payment.booking_id, {})
        found: list[Difference] = []
        async with semaphore:
            try:
                if payment.paid_amount == 0:
                    # Open or settling: did the provider take money we never heard of (a lost webhook)?
                    if payment.payment_intent_id:
                        intent = await provider.retrieve_payment_intent(payment.payment_intent_id)
                        if intent.get("status") == "succeeded":
                            found.append(Difference("payment.unrecorded", ref, 0, intent.get("amount")))
                    return found
                if payment.package_id is not None:
                    # Paid with a package credit: no charge of its own (the package's charge is
                    # checked below); only its transfer is the provider's.
                    return await check_transfer(payment, ref, mine)
                if not payment.payment_intent_id:
                    return [Difference("payment.no_intent", ref, payment.paid_amount, None)]
                intent = await provider.retrieve_payment_intent(payment.payment_intent_id)
                charge_id = payment.charge_id or intent.get("latest_charge")
                if isinstance(charge_id, dict):
                    charge_id = charge_id.get("id")
                charge = await provider.retrieve_charge(charge_id) if charge_id else {}
                if int(charge.get("amount") or 0) != mine.get("paid", 0):
                    found.append(Difference("charge.amount", ref, mine.get("paid", 0), charge.get("amount")))
                if str(charge.get("currency") or "").upper() not in ("", payment.currency):
                    found.append(Difference("charge.currency", ref, payment.currency, charge.get("currency")))
                provider_refunded = int(charge.get("amount_refunded") or 0)
                lost = mine.get("lost", 0)
                if lost:
                    # A lost dispute took what the charge still held; the provider shows it as
                    # disputed, not refunded. A refund whose event came only after the loss is
                    # counted in the loss, so the provider's refunds lie between the two.
                    if charge and charge.get("disputed") is False:
                        found.append(Difference("charge.disputed", ref, lost, "not disputed"))
                    if not mine.get("refunded", 0) <= provider_refunded <= mine.get("refunded", 0) + lost:
                        found.append(
                            Difference("charge.amount_refunded", ref, mine.get("refunded", 0), provider_refunded)
                        )
                elif provider_refunded != mine.get("refunded", 0):
                    found.append(
                        Difference(
                            "charge.amount_refunded", ref, mine.get("refunded", 0), charge.get("amount_refunded")
                        )
                    )
                found += await check_transfer(payment, ref, mine)
            except ProviderError as exc:
                found.append(Difference("provider.error", ref, None, str(exc)[:80]))
        return found

    for found in await asyncio.gather(*(check(p) for p in payments)):
        diffs.extend(found)
    diffs.extend(await _reconcile_packages(session, provider, semaphore))
    return Report(differences=diffs, transactions=count, payments=len(payments), totals=totals)


async def _reconcile_packages(
    session: AsyncSession, provider: PaymentProvider, semaphore: asyncio.Semaphore
) -> list[Difference]:
    """Each paid lesson package's charge: its amount, and what was refunded on it (the pro-rata
    refund plus money refunds of lessons paid with its credits)."""
    from payouts.models import LessonPackage

    packages = list(
        (
            await session.execute(
                select(LessonPackage).where(LessonPackage.paid_amount > 0, LessonPackage.payment_intent_id.is_not(None))
            )
        ).scalars()
    )
    lesson_refunds = {
        package_id: int(total)
        for package_id, total in (
            await session.execute(
                select(Payment.package_id, -func.sum(LedgerEntry.amount))
                .join(LedgerTransaction, LedgerTransaction.booking_id == Payment.booking_id)
                .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
                .where(
                    Payment.package_id.is_not(None),
                    LedgerTransaction.kind == "refund",
                    LedgerEntry.account == ledger.CASH,
                )
                .group_by(Payment.package_id)
            )
        ).all()
    }

    async def check(package: LessonPackage) -> list[Difference]:
        ref = f"package {package.id}"
        async with semaphore:
            try:
                intent = await provider.retrieve_payment_intent(package.payment_intent_id)
                charge_id = package.charge_id or intent.get("latest_charge")
                if isinstance(charge_id, dict):
                    charge_id = charge_id.get("id")
                charge = await provider.retrieve_charge(charge_id) if charge_id else {}
            except ProviderError as exc:
                return [Difference("provider.error", ref, None, str(exc)[:80])]
        found = []
        if int(charge.get("amount") or 0) != package.paid_amount:
            found.append(Difference("package.charge.amount", ref, package.paid_amount, charge.get("amount")))
        refunded = package.refunded_amount + lesson_refunds.get(package.id, 0)
        if int(charge.get("amount_refunded") or 0) != refunded:
            found.append(Difference("package.amount_refunded", ref, refunded, charge.get("amount_refunded")))
        return found

    out: list[Difference] = []
    for found in await asyncio.gather(*(check(p) for p in packages)):
        out.extend(found)
    return out
