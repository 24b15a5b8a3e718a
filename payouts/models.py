"""Payments data: tutors' payout accounts, one payment per booking, the ledger, provider events
(stored once by id), payouts reported by the provider, disputes and the offline provider's objects.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, Entity, UTCDateTime, utcnow


class PaymentStatus(enum.StrEnum):
    created = "created"  # row exists, no checkout session yet
    open = "open"  # checkout session open
    processing = "processing"  # checkout completed, an asynchronous method is still settling
    paid = "paid"
    failed = "failed"
    expired = "expired"
    unapplied = "unapplied"  # money arrived but no booking could take it: refunded automatically


class TransferStatus(enum.StrEnum):
    none = "none"
    pending = "pending"  # lesson completed, transfer job enqueued
    paid = "paid"
    frozen = "frozen"  # dispute: no transfer until it is settled
    released = "released"  # a dispute settled for the tutor: transfer without waiting for the window
    cancelled = "cancelled"  # nothing left to transfer (fully refunded)


class DisputeStatus(enum.StrEnum):
    open = "open"
    resolved = "resolved"


class PayoutAccount(Entity):
    """A tutor's account at the provider (a Stripe Express account, or the offline stand-in)."""

    __tablename__ = "payout_accounts"

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True, nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    account_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    details_submitted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    requirements_due: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # event time of the last status

    @property
    def ready(self) -> bool:
        return self.charges_enabled and self.payouts_enabled


class Payment(Entity):
    """The payment of one booking: its checkout session, what was paid, refunded and transferred."""

    __tablename__ = "payments"

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"), unique=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[PaymentStatus] = mapped_column(
        Enum(PaymentStatus, name="payment_status", native_enum=False, length=16), nullable=False
    )
    amount: Mapped[int] = mapped_column(Integer, nullable=False)  # what the booking costs
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    fee_amount: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    checkout_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    checkout_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    paid_amount: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # captured
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_amount: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # cumulative
    refund_requested: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # cumulative target
    transfer_status: Mapped[TransferStatus] = mapped_column(
        Enum(TransferStatus, name="transfer_status", native_enum=False, length=16),
        nullable=False,
        default=TransferStatus.none,
    )
    transfer_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    transfer_amount: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    transfer_reversed_amount: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    transferred_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    provider_dispute_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Paid with a lesson package credit (``provider`` is then "package"): the package it came from.
    package_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("lesson_packages.id", ondelete="RESTRICT"), nullable=True, index=True
    )

    __table_args__ = (
        Index("ix_payments_student_created", "student_id", "created_at"),
        Index("ix_payments_tutor_created", "tutor_id", "created_at"),
    )


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    booking_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    tutor_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    memo: Mapped[str | None] = mapped_column(String(300), nullable=True)

    __table_args__ = (Index("ix_ledger_transactions_occurred", "occurred_at"),)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_transactions.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    account: Mapped[str] = mapped_column(String(80), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)  # debit > 0, credit < 0

    __table_args__ = (Index("ix_ledger_entries_account_currency", "account", "currency"),)


class WebhookEvent(Entity):
    """A provider event, stored once by its id; ``status``: pending, processed, deferred (waiting for
    an earlier event), ignored or failed."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    endpoint: Mapped[str] = mapped_column(String(16), nullable=False)  # platform, connect, offline
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    account: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    __table_args__ = (Index("ix_webhook_events_status", "status", "created_at"),)


class ProviderPayout(Entity):
    """A payout from a tutor's connected account to their bank (``payout.paid`` / ``payout.failed``)."""

    __tablename__ = "provider_payouts"

    payout_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    tutor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    account_id: Mapped[str] = mapped_column(String(64), nullable=False)
    amount: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    arrival_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failure_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    event_created: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)  # newest event wins


class Dispute(Entity):
    """A student's dispute of a lesson (within the review window), settled by an admin."""

    __tablename__ = "payment_disputes"

    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"), unique=True)
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[DisputeStatus] = mapped_column(
        Enum(DisputeStatus, name="dispute_status", native_enum=False, length=16), nullable=False
    )
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)  # refund, partial, release
    refund_amount: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OfflineObject(Base):
    """The offline provider's objects (checkout sessions, refunds, transfers), as Stripe would keep them."""

    __tablename__ = "offline_provider_objects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class PackageStatus(enum.StrEnum):
    created = "created"  # row exists, no checkout session yet
    open = "open"  # checkout session open
    processing = "processing"  # checkout completed, an asynchronous method is still settling
    active = "active"  # paid: credits can be spent (until expires_at)
    failed = "failed"
    expired = "expired"  # checkout expired unpaid (never active)
    lapsed = "lapsed"  # was active; unused credits expired 6 months after purchase
    refunding = "refunding"  # the student asked for the pro-rata refund; the provider call is pending
    refunded = "refunded"  # unused credits refunded pro rata; closed
    unapplied = "unapplied"  # money arrived that does not match the package: refunded in full


PACKAGE_DISPUTE_NOTE = "dispute:"


class PackageOffer(Entity):
    """A tutor's package offer: ``lessons`` (5 or 10) lessons of 60 minutes at ``discount_percent`` off."""

    __tablename__ = "package_offers"

    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    lessons: Mapped[int] = mapped_column(Integer, nullable=False)
    discount_percent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    __table_args__ = (UniqueConstraint("tutor_id", "lessons", name="uq_package_offers_tutor_lessons"),)


class LessonPackage(Entity):
    """A student's purchase of ``lessons`` credits with one tutor, and what is left of it.

    ``remaining_value`` is what the ledger still holds for the unused credits (account
    ``package_credit:{id}``); spending a credit moves ``remaining_value // credits_left`` of it to the
    lesson; a refund pays out exactly ``remaining_value``; expiry books it as breakage."""

    __tablename__ = "lesson_packages"

    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    tutor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[PackageStatus] = mapped_column(
        Enum(PackageStatus, name="package_status", native_enum=False, length=16), nullable=False
    )
    lessons: Mapped[int] = mapped_column(Integer, nullable=False)
    lesson_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=60)
    unit_price: Mapped[int] = mapped_column(Integer, nullable=False)  # one lesson's price at purchase
    discount_percent: Mapped[int] = mapped_column(Integer, nullable=False)
    amount: Mapped[int] = mapped_column(Integer, nullable=False)  # what the package costs
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    checkout_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    charge_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    paid_amount: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # credits expire
    credits_left: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    remaining_value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refund_requested: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    refunded_amount: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failure_message: Mapped[str | None] = mapped_column(String(500), nullable=True)

    # A provider dispute (chargeback) on the package's charge is noted in ``failure_message`` as
    # ``dispute:{dispute_id}:{open|won|lost}`` (no column of its own; see payouts.packages).
    @property
    def dispute(self) -> tuple[str, str] | None:
        """``(dispute_id, state)`` of the provider dispute on this package's charge, if any."""
        note = self.failure_message or ""
        if not note.startswith(PACKAGE_DISPUTE_NOTE):
            return None
        dispute_id, _sep, state = note.removeprefix(PACKAGE_DISPUTE_NOTE).rpartition(":")
        return dispute_id, state

    @property
    def disputed(self) -> bool:
        """Frozen: a dispute is open; no credit can be spent or refunded until it is settled."""
        return self.dispute is not None and self.dispute[1] == "open"

    __table_args__ = (
        Index("ix_lesson_packages_student_tutor", "student_id", "tutor_id"),
        Index("ix_lesson_packages_tutor_created", "tutor_id", "created_at"),
        Index("ix_lesson_packages_status_expires", "status", "expires_at"),
    )
