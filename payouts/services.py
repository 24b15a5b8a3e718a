"""Payments verbs: payout accounts, checkout, applying provider events (fulfilment, refunds,
reversals, disputes, payouts), refunds and transfers, and the ledger writes they make.

Rules:

* fulfilment only from provider events (verified webhooks, or the offline provider's events): the
  booking is confirmed and the payment written to the ledger in one transaction;
* every event handler is idempotent and independent of order: money totals the provider reports
  are cumulative (``amount_refunded``, ``amount_reversed``) and the ledger is brought *up to* them;
  an event whose prerequisite has not arrived yet is ``deferred`` and applied again later;
* provider calls run outside database transactions, with an idempotency key; their results are
  applied through the same "bring up to" functions as the events, so a call and its webhook never
  count twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.audit import audit_reason, audit_record
from marketplace.db import after_commit, session_factory, transaction, utcnow
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.i18n import gettext as _
from marketplace.ports import LessonPayment
from marketplace.settings import get_settings
from marketplace.sqlite_gate import sqlite_write_gate
from payouts import ledger, packages
from payouts.models import (
    PACKAGE_DISPUTE_NOTE,
    Dispute,
    DisputeStatus,
    LedgerEntry,
    LedgerTransaction,
    LessonPackage,
    Payment,
    PaymentStatus,
    PayoutAccount,
    ProviderPayout,
    TransferStatus,
    WebhookEvent,
)
from payouts.providers import get_provider, transfer_group
from scheduling.models import Booking, BookingStatus

log = logging.getLogger(__name__)

PROCESSED, DEFERRED, IGNORED = "processed", "deferred", "ignored"


def fee_for(amount: int) -> int:
    return ledger.platform_fee(amount, get_settings().platform_fee_percent)


# ---- ledger --------------------------------------------------------------------------------------


async def ledger_post(
    session: AsyncSession,
    txn: ledger.Txn,
    *,
    booking_id: uuid.UUID | None = None,
    tutor_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    memo: str | None = None,
) -> bool:
    """Write ``txn`` once (by its key); False when a transaction with that key exists."""
    if not ledger.is_balanced(txn.postings):  # built by make_txn, so never; the database gets no other
        raise AssertionError(f"unbalanced ledger transaction {txn.key}")
    exists = await session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.key == txn.key))
    if exists is not None:
        return False
    row = LedgerTransaction(
        key=txn.key,
        kind=txn.kind,
        booking_id=booking_id,
        tutor_id=tutor_id,
        occurred_at=occurred_at or utcnow(),
        memo=memo,
    )
    session.add(row)
    await session.flush()
    session.add_all(
        LedgerEntry(transaction_id=row.id, account=p.account, currency=p.currency, amount=p.amount)
        for p in txn.postings
    )
    await session.flush()
    return True


async def ledger_balances(session: AsyncSession, *, account_prefix: str | None = None) -> dict[tuple[str, str], int]:
    query = select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount)).group_by(
        LedgerEntry.account, LedgerEntry.currency
    )
    if account_prefix:
        query = query.where(LedgerEntry.account.startswith(account_prefix))
    return {(a, c): int(total) for a, c, total in (await session.execute(query)).all()}


async def ledger_unbalanced(session: AsyncSession) -> list[tuple[uuid.UUID, str, int]]:
    """Transactions whose entries do not sum to zero in some currency (must always be empty)."""
    rows = await session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .group_by(LedgerEntry.transaction_id, LedgerEntry.currency)
        .having(func.sum(LedgerEntry.amount) != 0)
    )
    return [(t, c, int(s)) for t, c, s in rows.all()]


# ---- payout accounts -----------------------------------------------------------------------------


async def payout_account_get(session: AsyncSession, *, tutor_id: uuid.UUID) -> PayoutAccount | None:
    return await session.scalar(select(PayoutAccount).where(PayoutAccount.tutor_id == tutor_id))


async def payout_account_ready(session: AsyncSession, *, tutor_id: uuid.UUID) -> bool:
    """Whether this tutor can take paid bookings (charges and payouts enabled at the provider)."""
    account = await payout_account_get(session, tutor_id=tutor_id)
    return account is not None and account.ready


async def payout_onboarding_link(*, tutor: User) -> str:
    """An Account Link for the tutor's Express account (created on demand). Each call makes a new
    link (links are single-use); reaching the return URL does not mean onboarding is done."""
    provider = get_provider()
    async with session_factory()() as session:
        account = await payout_account_get(session, tutor_id=tutor.id)
    if account is None:
        data = await provider.create_account(
            tutor_id=tutor.id, email=tutor.email, idempotency_key=f"account:{tutor.id}"
        )
        try:
            async with transaction() as session:
                account = PayoutAccount(tutor_id=tutor.id, provider=provider.name, account_id=data["id"])
                _apply_account(account, data)
                session.add(account)
        except IntegrityError:  # a parallel request made it
            async with session_factory()() as session:
                account = await payout_account_get(session, tutor_id=tutor.id)
    base = get_settings().base_url
    return await provider.account_link(
        account_id=account.account_id,
        refresh_url=f"{base}/payouts/onboarding/refresh",
        return_url=f"{base}/payouts/onboarding/return",
    )


def _apply_account(account: PayoutAccount, data: dict[str, Any]) -> None:
    account.charges_enabled = bool(data.get("charges_enabled"))
    account.payouts_enabled = bool(data.get("payouts_enabled"))
    account.details_submitted = bool(data.get("details_submitted"))
    requirements = data.get("requirements") or {}
    account.requirements_due = sorted(requirements.get("currently_due") or [])


async def payout_account_apply(
    session: AsyncSession, *, data: dict[str, Any], event_created: int | None = None
) -> PayoutAccount | None:
    """Status of a connected account from ``account.updated`` (or a fresh retrieve): the newest wins."""
    account = await session.scalar(select(PayoutAccount).where(PayoutAccount.account_id == data.get("id")))
    if account is None:
        return None
    at = datetime.fromtimestamp(event_created, UTC) if event_created else utcnow()
    if account.status_at is not None and at < account.status_at:
        return account  # an older event than what we applied
    _apply_account(account, data)
    account.status_at = at
    return account


async def payout_account_refresh(*, tutor_id: uuid.UUID) -> PayoutAccount | None:
    """Ask the provider for the account's status (the return URL; webhooks remain the source)."""
    async with session_factory()() as session:
        account = await payout_account_get(session, tutor_id=tutor_id)
    if account is None:
        return None
    data = await get_provider().retrieve_account(account.account_id)
    async with transaction() as session:
        return await payout_account_apply(session, data=data)


# ---- checkout ---------------------------------------------------------------------------------


async def payment_for_booking(session: AsyncSession, *, booking_id: uuid.UUID) -> Payment | None:
    return await session.scalar(select(Payment).where(Payment.booking_id == booking_id))


async def checkout_start(*, booking_id: uuid.UUID, student: User) -> str:
    """The URL of the provider's checkout for this held booking: one session per booking and
    attempt (a double click gets the same one), expiring with the hold, booking id in metadata."""
    provider = get_provider()
    now = utcnow()
    async with transaction() as session:
        booking = await session.scalar(select(Booking).where(Booking.id == booking_id).with_for_update())
        if booking is None or booking.student_id != student.id:
            raise NotFound(_("We could not find this booking."))
        payment = await payment_for_booking(session, booking_id=booking.id)
        if payment is not None and payment.status in (PaymentStatus.paid, PaymentStatus.processing):
            return f"/pay/{booking.id}/success"
        if booking.status != BookingStatus.held:
            raise Conflict(_("This booking is not waiting for payment."))
        if booking.hold_expires_at is None or booking.hold_expires_at <= now:
            raise Conflict(_("The time to pay for this booking has run out. Please pick the slot again."))
        if not await payout_account_ready(session, tutor_id=booking.tutor_id):
            raise Conflict(_("This tutor cannot take paid bookings yet."))
        if booking.price_amount <= 0:
            raise ValidationFailed(_("This booking has no price to pay."))
        if payment is not None and payment.status == PaymentStatus.open and payment.checkout_url:
            return payment.checkout_url
        if payment is None:
            payment = Payment(
                booking_id=booking.id,
                student_id=booking.student_id,
                tutor_id=booking.tutor_id,
                provider=provider.name,
                status=PaymentStatus.created,
                amount=booking.price_amount,
                currency=booking.currency,
                fee_amount=fee_for(booking.price_amount),
                attempt=1,
            )
            session.add(payment)
        elif payment.status in (PaymentStatus.expired, PaymentStatus.failed):
            payment.attempt += 1
            payment.status = PaymentStatus.created
            payment.checkout_session_id = None
            payment.checkout_url = None
        attempt = payment.attempt
        amount, currency, expires_at = payment.amount, payment.currency, booking.hold_expires_at
        tutor = await session.get(User, booking.tutor_id)
        description = _("Lesson with %(name)s", name=tutor.display_name if tutor else "")
    base = get_settings().base_url
    info = await provider.create_checkout(
        booking_id=booking_id,
        amount=amount,
        currency=currency,
        description=description,
        customer_email=student.email,
        expires_at=expires_at,
        success_url=f"{base}/pay/{booking_id}/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}/pay/{booking_id}/cancel",
        idempotency_key=f"checkout:{booking_id}:{attempt}",
    )
    async with transaction() as session:
        payment = await payment_for_booking(session, booking_id=booking_id)
        if payment.attempt == attempt and payment.status == PaymentStatus.created:
            payment.status = PaymentStatus.open
            payment.checkout_session_id = info.id
            payment.checkout_url = info.url
            payment.checkout_expires_at = info.expires_at
    return info.url


# ---- events -------------------------------------------------------------------------------------


async def event_receive(*, endpoint: str, event: dict[str, Any]) -> bool:
    """Store a verified event once by its id and process it in a job; False for a replay.

    Returns once the event is committed. Concurrent deliveries share one transaction (group
    commit, :class:`_EventInbox`), so a burst of webhooks costs a few writes, not one each: on
    SQLite, where writers queue for one lock, that is what keeps the endpoint fast."""
    event_id = str(event.get("id") or "")
    if not event_id:
        raise ValidationFailed(_("The event has no id."))
    return await _inbox.put(endpoint, event)


async def _store_events(batch: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """Insert the events of ``batch`` that are not stored yet, in one transaction; their jobs are
    sent after the commit, before this returns (so before any caller answers), from a thread: with
    the Redis broker each send is a round trip, which must not stall the event loop that is reading
    the next deliveries. Returns the ids stored now."""
    from payouts.jobs import process_event

    wanted: dict[str, tuple[str, dict[str, Any]]] = {}
    for endpoint, event in batch:
        wanted.setdefault(str(event["id"]), (endpoint, event))
    async with sqlite_write_gate.hold(), transaction() as session:
        existing = set(
            (await session.execute(select(WebhookEvent.event_id).where(WebhookEvent.event_id.in_(list(wanted)))))
            .scalars()
            .all()
        )
        new = [event_id for event_id in wanted if event_id not in existing]
        if new:
            await session.execute(
                insert(WebhookEvent),
                [
                    {
                        "event_id": event_id,
                        "endpoint": wanted[event_id][0],
                        "type": str(wanted[event_id][1].get("type") or ""),
                        "account": wanted[event_id][1].get("account"),
                        "payload": wanted[event_id][1],
                        "status": "pending",
                        "attempts": 0,
                    }
                    for event_id in new
                ],
            )

    if new:

        def send() -> None:
            for event_id in new:
                process_event.send(event_id)

        await asyncio.to_thread(send)
    return set(new)


class _EventInbox:
    """Group commit for incoming events: callers wait for the batch their event was written in."""

    MAX_BATCH = 200

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[tuple[str, dict[str, Any], asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None

    async def put(self, endpoint: str, event: dict[str, Any]) -> bool:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, CLI): start afresh
            self._loop, self._queue, self._task = loop, [], None
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((endpoint, event, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                try:
                    stored = await _store_events([(e, ev) for e, ev, _f in batch])
                except IntegrityError:  # another process stored one of them meanwhile: one by one
                    stored = set()
                    for endpoint, event, _f in batch:
                        try:
                            stored |= await _store_events([(endpoint, event)])
                        except IntegrityError:
                            pass
            except Exception as exc:  # the callers answer with an error; the provider retries
                for _e, _ev, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            first: set[str] = set()
            for _e, event, future in batch:
                event_id = str(event["id"])
                is_new = event_id in stored and event_id not in first
                first.add(event_id)
                if not future.done():
                    future.set_result(is_new)


_inbox = _EventInbox()


async def event_process(event_id: str) -> str | None:
    """Apply a stored event (idempotent). Returns its status. On SQLite it takes turns with the
    webhook inbox at the write gate (``marketplace.sqlite_gate``)."""
    async with sqlite_write_gate.hold(), transaction() as session:
        event = await session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id).with_for_update())
        if event is None:
            return None
        if event.status in (PROCESSED, IGNORED):
            return event.status
        handler = HANDLERS.get(event.type)
        obj = (event.payload.get("data") or {}).get("object") or {}
        event.attempts += 1
        if handler is None:
            result = IGNORED
        else:
            result = await handler(session, obj, event.payload)
        event.status = result
        if result in (PROCESSED, IGNORED):
            event.processed_at = utcnow()
        if result == PROCESSED:
            after_commit(session, _retry_deferred_soon)
        return result


def _retry_deferred_soon() -> None:
    from payouts.jobs import retry_deferred_events

    retry_deferred_events.send()


async def events_retry_deferred() -> int:
    """Process every deferred event again (their prerequisite may have arrived)."""
    async with session_factory()() as session:
        ids = list(
            (
                await session.execute(
                    select(WebhookEvent.event_id)
                    .where(WebhookEvent.status.in_(("deferred", "pending")))
                    .order_by(WebhookEvent.created_at)
                )
            ).scalars()
        )
    done = 0
    for event_id in ids:
        if await event_process(event_id) == PROCESSED:
            done += 1
    return done


def _booking_id(obj: dict[str, Any]) -> uuid.UUID | None:
    raw = (obj.get("metadata") or {}).get("booking_id") or obj.get("client_reference_id")
    try:
        return uuid.UUID(str(raw)) if raw else None
    except ValueError:
        return None


async def _payment_by(session: AsyncSession, **where: Any) -> Payment | None:
    conditions = [getattr(Payment, k) == v for k, v in where.items() if v]
    if not conditions:
        return None
    return await session.scalar(select(Payment).where(or_(*conditions)).with_for_update())


async def _on_checkout_completed(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    if packages.package_id_of(obj) is not None:
        return await packages.on_checkout_completed(session, obj)
    booking_id = _booking_id(obj)
    payment = await _payment_by(session, booking_id=booking_id, checkout_session_id=obj.get("id"))
    if payment is None:
        log.warning("checkout session %s for unknown booking %s", obj.get("id"), booking_id)
        return IGNORED
    if obj.get("payment_intent") and not payment.payment_intent_id:
        payment.payment_intent_id = obj["payment_intent"]
    if obj.get("payment_status") not in ("paid", "no_payment_required"):
        if payment.status in (PaymentStatus.open, PaymentStatus.created, PaymentStatus.expired):
            payment.status = PaymentStatus.processing  # an asynchronous method settles later
        return PROCESSED
    return await _fulfil(session, payment, obj)


async def _fulfil(session: AsyncSession, payment: Payment, obj: dict[str, Any]) -> str:
    if payment.paid_amount > 0:
        return PROCESSED  # already applied (replay, or completed + async_payment_succeeded)
    amount = int(obj.get("amount_total") or 0)
    currency = str(obj.get("currency") or "").upper()
    payment.paid_amount = amount
    payment.paid_at = utcnow()
    if obj.get("payment_intent"):
        payment.payment_intent_id = obj["payment_intent"]
    payment.checkout_session_id = payment.checkout_session_id or obj.get("id")
    reason = None
    if amount != payment.amount or currency != payment.currency:
        reason = "amount or currency does not match the booking"
    else:
        from scheduling import bookings as scheduling_bookings

        try:
            async with session.begin_nested():
                await scheduling_bookings.booking_confirm_payment(
                    session, booking_id=payment.booking_id, paid_at=payment.paid_at
                )
        except scheduling_bookings.HoldLapsed:
            reason = "hold lapsed"
        except (Conflict, ValidationFailed, NotFound) as exc:
            reason = f"booking refused the payment: {exc.message}"
    if reason is not None:
        # Money no booking can take: kept apart and refunded in full, automatically.
        payment.status = PaymentStatus.unapplied
        payment.failure_message = reason
        payment.currency = currency if len(currency) == 3 else payment.currency
        if amount > 0:
            await ledger_post(
                session,
                ledger.unapplied_payment_txn(key=f"payment:{payment.id}", amount=amount, currency=payment.currency),
                booking_id=payment.booking_id,
                memo=reason,
            )
            _schedule_refund(session, payment.booking_id, amount)
        return PROCESSED
    payment.status = PaymentStatus.paid
    await ledger_post(
        session,
        ledger.payment_txn(
            key=f"payment:{payment.id}",
            tutor_id=payment.tutor_id,
            amount=amount,
            fee=payment.fee_amount,
            currency=payment.currency,
        ),
        booking_id=payment.booking_id,
        tutor_id=payment.tutor_id,
    )
    if payment.refund_requested > payment.refunded_amount:
        _schedule_refund(session, payment.booking_id, payment.refund_requested)
    return PROCESSED


async def _on_async_succeeded(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    if packages.package_id_of(obj) is not None:
        return await packages.on_async_succeeded(session, obj)
    payment = await _payment_by(session, booking_id=_booking_id(obj), checkout_session_id=obj.get("id"))
    if payment is None:
        return IGNORED
    return await _fulfil(session, payment, {**obj, "payment_status": "paid"})


async def _on_async_failed(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    if packages.package_id_of(obj) is not None:
        return await packages.on_async_failed(session, obj)
    payment = await _payment_by(session, booking_id=_booking_id(obj), checkout_session_id=obj.get("id"))
    if payment is None:
        return IGNORED
    if payment.paid_amount == 0 and payment.checkout_session_id in (None, obj.get("id")):
        payment.status = PaymentStatus.failed
        payment.failure_message = "asynchronous payment failed"
    return PROCESSED


async def _on_checkout_expired(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    if packages.package_id_of(obj) is not None:
        return await packages.on_checkout_expired(session, obj)
    payment = await _payment_by(session, checkout_session_id=obj.get("id"))
    if payment is None:
        return IGNORED
    if payment.status in (PaymentStatus.open, PaymentStatus.created) and payment.checkout_session_id == obj.get("id"):
        payment.status = PaymentStatus.expired
    return PROCESSED


async def _on_charge_refunded(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    # A lesson package's charge first: lessons paid with its credits carry its charge id once
    # transferred, and must not take the package's refunds as their own.
    noted = await packages.on_charge_event(session, obj)
    if noted is not None:
        return noted
    payment = await _payment_by(session, payment_intent_id=obj.get("payment_intent"), charge_id=obj.get("id"))
    if payment is None or payment.paid_amount == 0:
        return DEFERRED  # the payment's own event has not been applied yet
    if obj.get("id") and not payment.charge_id:
        payment.charge_id = obj["id"]
    await apply_refunded_total(session, payment, int(obj.get("amount_refunded") or 0))
    return PROCESSED


async def _on_transfer_reversed(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    payment = await _payment_by(session, transfer_id=obj.get("id"))
    if payment is None:
        return DEFERRED
    await apply_reversed_total(session, payment, int(obj.get("amount_reversed") or 0))
    return PROCESSED


# A provider dispute (chargeback) of a lesson's charge is noted in the payment's ``failure_message``
# as ``dispute:{dispute_id}:{open|won|lost}``, as lesson packages note theirs (no column of its own):
# the dispute's state by its id, so a late ``created`` after its ``closed`` changes nothing.


def _provider_dispute(payment: Payment) -> tuple[str, str] | None:
    """``(dispute_id, state)`` of the provider dispute noted on this payment, if any."""
    note = payment.failure_message or ""
    if not note.startswith(PACKAGE_DISPUTE_NOTE):
        return None
    dispute_id, _sep, state = note.removeprefix(PACKAGE_DISPUTE_NOTE).rpartition(":")
    return dispute_id, state


def _provider_dispute_open(payment: Payment) -> bool:
    noted = _provider_dispute(payment)
    if noted is not None:
        return noted[1] == packages.DISPUTE_OPEN
    return payment.provider_dispute_id is not None  # frozen before disputes were noted


def _note_provider_dispute(payment: Payment, dispute_id: str, state: str) -> None:
    payment.provider_dispute_id = dispute_id
    if payment.status != PaymentStatus.unapplied:  # there it holds why the money is refunded
        payment.failure_message = f"{PACKAGE_DISPUTE_NOTE}{dispute_id}:{state}"


async def _on_dispute_created(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    """``charge.dispute.created`` on a lesson's charge: the transfer to the tutor freezes until the
    dispute closes. A dispute that closed already (its events out of order) or a replay changes
    nothing, so created-then-closed and closed-then-created end in the same state."""
    on_package = await packages.on_dispute_created(session, obj)  # a lesson package's charge
    if on_package is not None:
        return on_package
    payment = await _payment_by(session, payment_intent_id=obj.get("payment_intent"), charge_id=obj.get("charge"))
    if payment is None or payment.paid_amount == 0:
        return DEFERRED  # the payment's own event has not been applied yet
    dispute_id = str(obj.get("id") or "")
    if obj.get("charge") and not payment.charge_id:
        payment.charge_id = obj["charge"]
    if payment.status == PaymentStatus.unapplied:
        return PROCESSED  # refunded in full anyway; a loss is booked when it closes
    noted = _provider_dispute(payment)
    if noted is not None and noted[0] == dispute_id:
        return PROCESSED  # replay, or closed already (a stale created)
    _note_provider_dispute(payment, dispute_id, packages.DISPUTE_OPEN)
    if payment.transfer_status in (TransferStatus.none, TransferStatus.pending, TransferStatus.released):
        payment.transfer_status = TransferStatus.frozen
    return PROCESSED


async def _on_dispute_closed(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    """``charge.dispute.closed`` on a lesson's charge.

    Won (or an inquiry closed, ``warning_closed``): a transfer this dispute froze goes ahead. While
    the student's own dispute of the lesson is open with an admin, it stays frozen (the admin
    decides; resolving it then releases the transfer); when the admin resolved it already, the
    transfer is ``released`` (no waiting for the review window again); otherwise the transfer
    waits for the window as usual. Lost: see :func:`_provider_dispute_lost`. Replays (and the
    same dispute's late ``created``) change nothing."""
    on_package = await packages.on_dispute_closed(session, obj)  # a lesson package's charge
    if on_package is not None:
        return on_package
    payment = await _payment_by(session, payment_intent_id=obj.get("payment_intent"), charge_id=obj.get("charge"))
    if payment is None or payment.paid_amount == 0:
        return DEFERRED
    dispute_id = str(obj.get("id") or "")
    if obj.get("charge") and not payment.charge_id:
        payment.charge_id = obj["charge"]
    noted = _provider_dispute(payment)
    if noted is not None and noted[0] == dispute_id and noted[1] != packages.DISPUTE_OPEN:
        return PROCESSED  # replay
    if obj.get("status") == "lost":
        await _provider_dispute_lost(session, payment, dispute_id)
        _note_provider_dispute(payment, dispute_id, packages.DISPUTE_LOST)
        return PROCESSED
    _note_provider_dispute(payment, dispute_id, packages.DISPUTE_WON)
    if payment.transfer_status == TransferStatus.frozen:
        admin = await session.scalar(select(Dispute).where(Dispute.booking_id == payment.booking_id))
        if admin is None:
            payment.transfer_status = TransferStatus.none
        elif admin.status == DisputeStatus.resolved:
            payment.transfer_status = TransferStatus.released
        if payment.transfer_status != TransferStatus.frozen:
            after_commit(session, _transfer_soon(payment.booking_id))
    return PROCESSED


async def _provider_dispute_lost(session: AsyncSession, payment: Payment, dispute_id: str) -> None:
    """A lost provider dispute: the bank took back what the charge still held (what was paid less
    the refunds made on it) and gave it to the student. The payment counts as refunded in full
    (``refunded_amount`` and ``refund_requested`` = ``paid_amount``), so no later cancellation or
    admin decision refunds it a second time.

    Ledger (as :func:`payouts.packages._dispute_lost` does for a package's charge): one
    transaction of kind ``dispute_lost``, key ``dispute_lost:{payment}`` (a replay adds nothing),
    Cr ``cash_at_provider`` by what the charge still held, and:

    * not transferred yet: the transfer is cancelled (never made); Dr ``tutor_payable:{tutor}`` by
      the tutor's part still owed (as a refund of the rest would take it back) and Dr ``refunds``
      by the rest (the fee's share);
    * transferred already: the platform bears the loss (Dr ``refunds`` by all of it); the transfer
      is not reversed, as in the package path (a reversal the platform makes later is booked by
      ``transfer.reversed`` as usual);
    * money no booking took (``unapplied``): Dr ``unapplied_funds``; the pending refund is dropped.

    Not of kind ``refund``: the provider shows no refund on the charge (reconciliation compares
    those and counts the loss apart). The provider's dispute fee is not booked. A refund made
    before the dispute whose event arrives only after the loss is absorbed by it (the balances
    come out the same)."""
    left = payment.paid_amount - payment.refunded_amount
    if left > 0:
        key = f"dispute_lost:{payment.id}"
        if payment.status == PaymentStatus.unapplied:
            txn = ledger.unapplied_dispute_lost_txn(key=key, amount=left, currency=payment.currency)
        elif payment.transfer_id is None and payment.transfer_status != TransferStatus.paid:
            tutor_part = (payment.paid_amount - payment.fee_amount) - _tutor_share(payment, payment.refunded_amount)
            txn = ledger.dispute_lost_txn(
                key=key,
                tutor_id=payment.tutor_id,
                tutor_part=tutor_part,
                platform_part=left - tutor_part,
                currency=payment.currency,
            )
        else:
            txn = ledger.dispute_lost_txn(
                key=key, tutor_id=payment.tutor_id, tutor_part=0, platform_part=left, currency=payment.currency
            )
        await ledger_post(
            session,
            txn,
            booking_id=payment.booking_id,
            tutor_id=payment.tutor_id,
            memo=f"dispute {dispute_id} lost"[:300],
        )
    payment.refunded_amount = payment.refund_requested = payment.paid_amount
    if payment.transfer_id is None:
        payment.transfer_status = TransferStatus.cancelled


async def _on_account_updated(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    account = await payout_account_apply(session, data=obj, event_created=event.get("created"))
    return PROCESSED if account is not None else IGNORED


async def _on_payout(session: AsyncSession, obj: dict[str, Any], event: dict[str, Any]) -> str:
    account_id = event.get("account") or obj.get("destination_account") or ""
    created = int(event.get("created") or 0)
    row = await session.scalar(select(ProviderPayout).where(ProviderPayout.payout_id == obj.get("id")))
    status = "paid" if event.get("type") == "payout.paid" else "failed"
    if row is None:
        account = await session.scalar(select(PayoutAccount).where(PayoutAccount.account_id == account_id))
        row = ProviderPayout(
            payout_id=obj["id"],
            tutor_id=account.tutor_id if account else None,
            account_id=account_id,
            amount=int(obj.get("amount") or 0),
            currency=str(obj.get("currency") or "").upper(),
            status=status,
            event_created=created,
        )
        session.add(row)
    elif created < row.event_created:
        return PROCESSED  # older news
    row.status = status
    row.event_created = created
    row.failure_message = obj.get("failure_message")
    if obj.get("arrival_date"):
        row.arrival_at = datetime.fromtimestamp(int(obj["arrival_date"]), UTC)
    return PROCESSED


HANDLERS = {
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_async_succeeded,
    "checkout.session.async_payment_failed": _on_async_failed,
    "checkout.session.expired": _on_checkout_expired,
    "charge.refunded": _on_charge_refunded,
    "transfer.reversed": _on_transfer_reversed,
    "charge.dispute.created": _on_dispute_created,
    "charge.dispute.closed": _on_dispute_closed,
    "account.updated": _on_account_updated,
    "payout.paid": _on_payout,
    "payout.failed": _on_payout,
}


# ---- refunds and transfers ------------------------------------------------------------------------


def _tutor_share(payment: Payment, refunded_total: int) -> int:
    return ledger.tutor_share_of_refund(paid=payment.paid_amount, fee=payment.fee_amount, refunded_total=refunded_total)


async def apply_refunded_total(session: AsyncSession, payment: Payment, total: int) -> bool:
    """Bring the ledger up to ``total`` refunded on this payment (cumulative, as the provider says)."""
    total = min(total, payment.paid_amount)
    if total <= payment.refunded_amount:
        return False
    before = payment.refunded_amount
    delta = total - before
    if payment.status == PaymentStatus.unapplied:
        txn = ledger.unapplied_refund_txn(key=f"refund:{payment.id}:{total}", amount=delta, currency=payment.currency)
    else:
        tutor_part = _tutor_share(payment, total) - _tutor_share(payment, before)
        txn = ledger.refund_txn(
            key=f"refund:{payment.id}:{total}",
            tutor_id=payment.tutor_id,
            tutor_part=tutor_part,
            platform_part=delta - tutor_part,
            currency=payment.currency,
        )
    await ledger_post(session, txn, booking_id=payment.booking_id, tutor_id=payment.tutor_id)
    payment.refunded_amount = total
    payment.refund_requested = max(payment.refund_requested, total)
    if total >= payment.paid_amount and payment.transfer_status in (
        TransferStatus.none,
        TransferStatus.pending,
        TransferStatus.released,
    ):
        payment.transfer_status = TransferStatus.cancelled
    return True


async def apply_reversed_total(session: AsyncSession, payment: Payment, total: int) -> bool:
    total = min(total, payment.transfer_amount)
    if total <= payment.transfer_reversed_amount:
        return False
    await ledger_post(
        session,
        ledger.transfer_reversal_txn(
            key=f"reversal:{payment.id}:{total}",
            tutor_id=payment.tutor_id,
            amount=total - payment.transfer_reversed_amount,
            currency=payment.currency,
        ),
        booking_id=payment.booking_id,
        tutor_id=payment.tutor_id,
    )
    payment.transfer_reversed_amount = total
    return True


def _schedule_refund(session: AsyncSession, booking_id: uuid.UUID, total: int) -> None:
    from payouts.jobs import refund_booking

    after_commit(session, lambda: refund_booking.send(str(booking_id), int(total)))


def _transfer_soon(booking_id: uuid.UUID):
    def send() -> None:
        from payouts.jobs import transfer_booking

        transfer_booking.send(str(booking_id))

    return send


async def payment_request_refund(session: AsyncSession, *, booking_id: uuid.UUID, total: int) -> Payment | None:
    """Ask for this booking's refunds to reach ``total`` (cumulative); the job does the provider
    calls after commit. More than was paid is refused."""
    payment = await _payment_by(session, booking_id=booking_id)
    if payment is None:
        return None
    if total < 0 or (payment.paid_amount and total > payment.paid_amount):
        raise ValidationFailed(_("A refund cannot be larger than what was paid."))
    payment.refund_requested = max(payment.refund_requested, total)
    if payment.paid_amount > 0 and payment.refund_requested > payment.refunded_amount:
        _schedule_refund(session, booking_id, payment.refund_requested)
    return payment


async def refund_to_total(*, booking_id: uuid.UUID, total: int) -> int:
    """Make the provider's refunds on this booking reach ``total`` (idempotent; outside transactions).
    After the transfer, the tutor's part is first pulled back with a transfer reversal."""
    provider = get_provider()
    async with transaction() as session:
        payment = await _payment_by(session, booking_id=booking_id)
        if payment is None or payment.paid_amount == 0:
            return 0
        intent, package_id = payment.payment_intent_id, payment.package_id
        if package_id is not None:
            # Paid with a package credit: a full refund gives the credit back while the package is
            # active; otherwise the money is refunded on the package's charge.
            if await packages.credit_back(session, payment, max(total, payment.refund_requested)):
                return payment.refunded_amount
            intent = await session.scalar(select(LessonPackage.payment_intent_id).where(LessonPackage.id == package_id))
        if not intent:
            return 0
        target = min(max(total, payment.refund_requested), payment.paid_amount)
        payment.refund_requested = target
        before = payment.refunded_amount
        if target <= before:
            return before
        pid, transfer_id = payment.id, payment.transfer_id
        reversal = 0
        if payment.status == PaymentStatus.paid and transfer_id:
            tutor_part = _tutor_share(payment, target) - _tutor_share(payment, before)
            owed = (payment.paid_amount - payment.fee_amount) - _tutor_share(payment, before)
            net_transferred = payment.transfer_amount - payment.transfer_reversed_amount
            reversal = min(max(0, tutor_part - (owed - net_transferred)), net_transferred)
            reversed_before = payment.transfer_reversed_amount
    if reversal:
        result = await provider.reverse_transfer(
            transfer_id=transfer_id, amount=reversal, idempotency_key=f"reversal:{pid}:{target}"
        )
        async with transaction() as session:
            payment = await _payment_by(session, booking_id=booking_id)
            await apply_reversed_total(session, payment, reversed_before + int(result.get("amount") or reversal))
    refund = await provider.refund(
        payment_intent_id=intent,
        amount=target - before,
        idempotency_key=f"refund:{pid}:{target}",
        booking_id=booking_id,
        package_id=package_id,
    )
    async with transaction() as session:
        payment = await _payment_by(session, booking_id=booking_id)
        await apply_refunded_total(session, payment, before + int(refund.get("amount") or target - before))
        return payment.refunded_amount


def transfer_due_at(booking: Booking) -> datetime:
    """The tutor is paid once the lesson's end plus the review window (disputes) has passed."""
    return booking.ends_at + timedelta(hours=get_settings().review_window_hours)


async def transfer_for_booking(*, booking_id: uuid.UUID, now: datetime | None = None) -> str | None:
    """After the lesson is completed and its review window has passed: one idempotent transfer of
    the tutor's share (transfer group, source transaction), unless a dispute froze it, it was
    refunded away or it is done already."""
    provider = get_provider()
    now = now or utcnow()
    async with transaction() as session:
        payment = await _payment_by(session, booking_id=booking_id)
        booking = await session.get(Booking, booking_id)
        if payment is None or booking is None or payment.status != PaymentStatus.paid:
            return None
        if booking.status not in (BookingStatus.completed, BookingStatus.no_show, BookingStatus.resolved):
            return None
        if now < transfer_due_at(booking) and payment.transfer_status != TransferStatus.released:
            return None  # the review window is open; the delayed job or the periodic pass comes back
        if payment.transfer_status in (TransferStatus.paid, TransferStatus.frozen, TransferStatus.cancelled):
            return payment.transfer_id
        amount = (payment.paid_amount - payment.fee_amount) - _tutor_share(payment, payment.refunded_amount)
        if payment.refund_requested > payment.refunded_amount:
            return None  # the refund goes first; its job transfers afterwards
        if amount <= 0:
            payment.transfer_status = TransferStatus.cancelled
            return None
        account = await payout_account_get(session, tutor_id=payment.tutor_id)
        if payment.transfer_status == TransferStatus.none:
            payment.transfer_status = TransferStatus.pending
        if account is None or not account.payouts_enabled:
            return None  # waits for the tutor's payouts; the periodic job tries again
        destination, pid, intent, charge = account.account_id, payment.id, payment.payment_intent_id, payment.charge_id
        if payment.package_id is not None:  # a credit-paid lesson: sourced from the package's charge
            package = await session.get(LessonPackage, payment.package_id)
            intent, charge = package.payment_intent_id, package.charge_id
        currency = payment.currency
    if not charge and intent:
        charge = (await provider.retrieve_payment_intent(intent)).get("latest_charge")
        if isinstance(charge, dict):
            charge = charge.get("id")
    transfer = await provider.transfer(
        amount=amount,
        currency=currency,
        destination=destination,
        transfer_group=transfer_group(booking_id),
        source_transaction=charge,
        idempotency_key=f"transfer:{booking_id}",
        booking_id=booking_id,
    )
    async with transaction() as session:
        payment = await _payment_by(session, booking_id=booking_id)
        payment.charge_id = payment.charge_id or charge
        if payment.transfer_id is None:
            payment.transfer_id = transfer["id"]
            payment.transfer_amount = int(transfer.get("amount") or amount)
            payment.transfer_status = TransferStatus.paid
            payment.transferred_at = utcnow()
            await ledger_post(
                session,
                ledger.transfer_txn(
                    key=f"transfer:{pid}", tutor_id=payment.tutor_id, amount=payment.transfer_amount, currency=currency
                ),
                booking_id=booking_id,
                tutor_id=payment.tutor_id,
            )
        return payment.transfer_id


async def checkout_expire(*, booking_id: uuid.UUID) -> None:
    """The hold ended without payment: close the open checkout session at the provider."""
    async with session_factory()() as session:
        payment = await payment_for_booking(session, booking_id=booking_id)
    if payment is None or payment.status != PaymentStatus.open or not payment.checkout_session_id:
        return
    if not await get_provider().expire_checkout(payment.checkout_session_id):
        return  # paid meanwhile: the provider's event applies it
    async with transaction() as session:
        payment = await _payment_by(session, booking_id=booking_id)
        if payment.status == PaymentStatus.open:
            payment.status = PaymentStatus.expired


# ---- reacting to bookings ---------------------------------------------------------------------


async def on_booking_event(session: AsyncSession, booking: Booking, event: str) -> None:
    """Registered with scheduling's booking listeners: runs inside the booking's transaction and
    only enqueues work for after the commit."""
    from payouts import jobs

    booking_id = str(booking.id)
    if event in ("cancelled", "declined", "expired"):
        # The booking decided the amount (policy, a decline or an unanswered request: everything).
        total = booking.refund_amount or 0 if booking.paid_at is not None else 0
        if total > 0:
            payment = await payment_for_booking(session, booking_id=booking.id)
            if payment is not None and payment.package_id is not None:
                # Paid with a credit: the policy's share of the credit's value (all of it: the credit).
                total = packages.refund_in_credit_terms(
                    refund=total, price=booking.price_amount, value=payment.paid_amount
                )
        if total > 0:
            after_commit(session, lambda: jobs.refund_booking.send(booking_id, int(total)))
        after_commit(session, lambda: jobs.expire_checkout.send(booking_id))
    elif event in ("completed", "no_show"):
        # Transfers now if the review window has passed already; otherwise the periodic pass does
        # it once it has (a delayed message would sit in the queue for days).
        after_commit(session, lambda: jobs.transfer_booking.send(booking_id))


def register_booking_listener() -> bool:
    try:
        from scheduling import bookings as scheduling_bookings
    except ImportError:
        return False
    register = getattr(scheduling_bookings, "on_booking_change", None)
    if register is None:
        return False
    register(on_booking_event)
    return True


# ---- offline provider: the test-mode checkout -----------------------------------------------------


async def offline_checkout_pay(*, session_id: str, student: User, succeed: bool = True) -> uuid.UUID:
    """The TEST MODE checkout page's "pay": the offline provider marks the session paid and emits the
    event Stripe would send; it is applied exactly like a verified webhook (stored once, a job)."""

    async def owner(session: AsyncSession, data: dict[str, Any]) -> uuid.UUID | None:
        booking_id = _booking_id(data)
        booking = await session.get(Booking, booking_id) if booking_id else None
        return booking_id if booking is not None and booking.student_id == student.id else None

    booking_id, _data, _paid = await _offline_pay(session_id, owner, succeed=succeed)
    return booking_id


async def offline_package_pay(*, session_id: str, student: User, succeed: bool = True) -> uuid.UUID:
    """The TEST MODE checkout's "pay" for a lesson package (see :func:`offline_checkout_pay`)."""

    async def owner(session: AsyncSession, data: dict[str, Any]) -> uuid.UUID | None:
        package_id = packages.package_id_of(data)
        package = await session.get(LessonPackage, package_id) if package_id else None
        return package_id if package is not None and package.student_id == student.id else None

    package_id, data, paid = await _offline_pay(session_id, owner, succeed=succeed)
    if paid:  # the charge, as Stripe would report it (gives the package its charge id)
        intent = await get_provider().retrieve_payment_intent(data["payment_intent"])
        async with transaction() as session:
            row = await session.get(LessonPackage, package_id, with_for_update=True)
            row.charge_id = row.charge_id or intent.get("latest_charge")
    return package_id


async def _offline_pay(session_id: str, owner, *, succeed: bool) -> tuple[uuid.UUID, dict[str, Any], bool]:
    """Pay (or fail) an open TEST MODE checkout whose ``owner(session, data)`` is the signed-in
    student's booking or package; returns that id, the session and whether it was paid just now."""
    from payouts.providers import OfflineProvider

    provider = get_provider()
    if not isinstance(provider, OfflineProvider):
        raise NotFound(_("We could not find this page."))
    data = await provider.retrieve_checkout(session_id)
    async with session_factory()() as session:
        owned = await owner(session, data) if data is not None else None
    if owned is None:
        raise NotFound(_("We could not find this checkout."))
    if data["status"] == "expired":
        raise Conflict(_("This checkout has expired."))
    if data["expires_at"] < int(utcnow().timestamp()):
        await provider.expire_checkout(session_id)
        await event_receive(endpoint="offline", event=_offline_event("checkout.session.expired", data))
        raise Conflict(_("This checkout has expired."))
    was_open = data["status"] == "open"
    data = await provider.pay_checkout(session_id, succeed=succeed)
    if was_open:
        kind = "checkout.session.completed" if succeed else "checkout.session.async_payment_failed"
        await event_receive(endpoint="offline", event=_offline_event(kind, data))
    return owned, data, was_open and succeed


def _offline_event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_test_{uuid.uuid5(uuid.NAMESPACE_URL, kind + ':' + obj['id']).hex[:24]}",
        "object": "event",
        "type": kind,
        "created": int(utcnow().timestamp()),
        "livemode": False,
        "data": {"object": obj},
    }


async def offline_onboarding_complete(*, tutor: User) -> None:
    from payouts.providers import OfflineProvider

    provider = get_provider()
    async with session_factory()() as session:
        account = await payout_account_get(session, tutor_id=tutor.id)
    if not isinstance(provider, OfflineProvider) or account is None:
        raise NotFound(_("We could not find this page."))
    data = await provider.complete_onboarding(account.account_id)
    await event_receive(endpoint="offline", event=_offline_event("account.updated", data))


# ---- disputes (student -> admin) -----------------------------------------------------------------

REASON_MIN, REASON_MAX = 10, 2000


def dispute_refusal(booking: Booking, payment: Payment | None, now: datetime) -> str | None:
    """Why this lesson cannot be disputed now (None: it can, unless it is disputed already)."""
    if payment is None or payment.status != PaymentStatus.paid:
        return _("Only a paid lesson can be disputed.")
    if booking.status in (BookingStatus.disputed, BookingStatus.resolved):
        return _("You have already disputed this lesson.")
    if payment.refunded_amount >= payment.paid_amount:
        return _("This lesson has been refunded in full.")
    if booking.status not in (BookingStatus.confirmed, BookingStatus.completed, BookingStatus.no_show):
        return _("This lesson cannot be disputed.")
    if booking.status == BookingStatus.confirmed and now < booking.starts_at:
        return _("This lesson has not started yet. You can cancel it instead.")
    if now > transfer_due_at(booking) or payment.transfer_status == TransferStatus.paid:
        return _("The time to dispute this lesson has passed.")
    return None


async def dispute_open(
    session: AsyncSession, *, student: User, booking_id: uuid.UUID, reason: str, now: datetime | None = None
) -> Dispute:
    """A student disputes a paid lesson within the review window (from its start until its end plus
    the window): the transfer to the tutor is frozen until an admin decides."""
    now = now or utcnow()
    booking = await session.get(Booking, booking_id)
    if booking is None or booking.student_id != student.id:
        raise NotFound(_("We could not find this lesson."))
    payment = await _payment_by(session, booking_id=booking_id)
    refusal = dispute_refusal(booking, payment, now)
    if refusal:
        raise Conflict(refusal)
    text = " ".join((reason or "").split())
    if not REASON_MIN <= len(text) <= REASON_MAX:
        message = _("Please describe the problem in %(min)d to %(max)d characters.", min=REASON_MIN, max=REASON_MAX)
        raise ValidationFailed(message, errors={"reason": message})
    existing = await session.scalar(select(Dispute).where(Dispute.booking_id == booking_id))
    if existing is not None:
        raise Conflict(_("You have already disputed this lesson."))
    from scheduling import bookings as scheduling_bookings

    dispute = Dispute(booking_id=booking_id, student_id=student.id, reason=text, status=DisputeStatus.open)
    session.add(dispute)
    before = payment.transfer_status.value
    booking_before = booking.status.value
    payment.transfer_status = TransferStatus.frozen
    await session.flush()
    await scheduling_bookings.booking_dispute(session, booking_id=booking_id)
    await audit_record(
        session,
        actor_id=student.id,
        action="payment.dispute_open",
        target_type="booking",
        target_id=booking_id,
        before={"transfer_status": before, "booking_status": booking_before},
        after={"transfer_status": TransferStatus.frozen.value, "booking_status": BookingStatus.disputed.value},
        reason=text,
    )
    return dispute


async def dispute_resolve(
    session: AsyncSession,
    *,
    admin: User,
    dispute_id: uuid.UUID,
    outcome: str,
    amount: int | None,
    reason: str,
) -> Dispute:
    """An admin settles a dispute: ``refund`` (everything not refunded yet), ``partial`` (``amount``
    minor units) or ``release`` (the tutor is paid). Refunds go through the refund job (with a
    transfer reversal when the money already went out); the rest is transferred afterwards."""
    reason = audit_reason(reason)
    dispute = await session.get(Dispute, dispute_id)
    if dispute is None:
        raise NotFound(_("We could not find this dispute."))
    if dispute.status != DisputeStatus.open:
        raise Conflict(_("This dispute is already resolved."))
    payment = await _payment_by(session, booking_id=dispute.booking_id)
    remaining = payment.paid_amount - max(payment.refunded_amount, payment.refund_requested)
    if outcome == "refund":
        refund = remaining
    elif outcome == "partial":
        if amount is None or amount <= 0:
            raise ValidationFailed(
                _("Enter the amount to refund."), errors={"amount": _("Enter the amount to refund.")}
            )
        if amount > remaining:
            message = _("A refund cannot be larger than what was paid.")
            raise ValidationFailed(message, errors={"amount": message})
        refund = amount
    elif outcome == "release":
        refund = 0
    else:
        raise ValidationFailed(_("Choose how to resolve the dispute."))
    from scheduling import bookings as scheduling_bookings

    before = {"status": dispute.status.value, "transfer_status": payment.transfer_status.value}
    booking = await scheduling_bookings.booking_resolve(session, booking_id=dispute.booking_id)
    dispute.status = DisputeStatus.resolved
    dispute.resolution = outcome
    dispute.refund_amount = refund
    dispute.resolved_by = admin.id
    dispute.resolved_at = utcnow()
    if payment.transfer_status == TransferStatus.frozen and not _provider_dispute_open(payment):
        payment.transfer_status = TransferStatus.released
    if refund:
        await payment_request_refund(
            session,
            booking_id=dispute.booking_id,
            total=max(payment.refunded_amount, payment.refund_requested) + refund,
        )
    else:
        after_commit(session, _transfer_soon(dispute.booking_id))
    await audit_record(
        session,
        actor_id=admin.id,
        action="payment.dispute_resolve",
        target_type="booking",
        target_id=dispute.booking_id,
        before=before,
        after={"status": "resolved", "resolution": outcome, "refund": refund, "booking_status": booking.status.value},
        reason=reason,
    )
    return dispute


async def disputes_open(session: AsyncSession) -> list[tuple[Dispute, Payment]]:
    rows = await session.execute(
        select(Dispute, Payment)
        .join(Payment, Payment.booking_id == Dispute.booking_id)
        .where(Dispute.status == DisputeStatus.open)
        .order_by(Dispute.created_at)
    )
    return [(d, p) for d, p in rows.all()]


# ---- what other domains ask (marketplace.ports) ----------------------------------------------------


class PaymentsPort:
    """Registered with :func:`marketplace.ports.register_payments` (scheduling asks through it)."""

    async def tutor_takes_paid_bookings(self, session: AsyncSession, *, tutor_id: uuid.UUID) -> bool:
        return await payout_account_ready(session, tutor_id=tutor_id)

    async def lesson_payment(
        self, session: AsyncSession, *, booking_id: uuid.UUID, viewer_id: uuid.UUID, now: datetime
    ) -> LessonPayment | None:
        payment = await payment_for_booking(session, booking_id=booking_id)
        if payment is None or payment.student_id != viewer_id:
            return None
        booking = await session.get(Booking, booking_id)
        receipt = f"/payments/{payment.id}" if payment.paid_amount > 0 else None
        disputable = (
            booking is not None
            and dispute_refusal(booking, payment, now) is None
            and await session.scalar(select(Dispute.id).where(Dispute.booking_id == booking_id)) is None
        )
        return LessonPayment(receipt_url=receipt, dispute_url=f"/pay/{booking_id}/dispute" if disputable else None)
