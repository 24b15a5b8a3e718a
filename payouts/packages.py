"""Lesson packages: 5 or 10 lessons with one tutor at a discount the tutor sets.

* The tutor's offer (:class:`PackageOffer`): 5 and/or 10 lessons of 60 minutes, 0-50 % off. The
  price is the tutor's 60-minute price x lessons x (1 - discount), in the tutor's currency,
  rounded *down* to a whole minor unit (:func:`payouts.ledger.package_price`).
* Buying: a checkout through the same provider interface as bookings (the package id in the
  session's metadata, an idempotency key per package and attempt). The package becomes ``active``
  only from the provider's event (a verified webhook or the offline provider's event), in the same
  transaction as its ledger entry (cash at the provider / ``package_credit:{id}``).
* Spending: a credit pays a held 60-minute lesson with that tutor (:func:`package_credit_spend`):
  one conditional UPDATE takes the credit (two holds racing for the last credit: one wins), the
  lesson gets a ``Payment`` (provider ``package``) worth ``remaining_value // credits_left``, the
  ledger moves that value from the package to the tutor's payable and the fee, and the booking is
  confirmed through ``scheduling.bookings.booking_confirm_payment``, all in one transaction. From
  there the lesson follows the card path (completion, review window, transfer, payout).
* Cancelling a credit-paid lesson: a full refund by the policy gives the credit back (while the
  package is active); a partial refund (late cancellation) is paid in money, the policy's share of
  the credit's value, refunded on the package's charge; after expiry or a refund of the package,
  a full refund is paid in money too.
* Expiry: credits expire 6 months after payment; a reminder goes out once, 14 days before; at the
  deadline the value still held is booked as breakage (platform revenue, ``package_breakage``).
* Pro-rata refund: the student can refund the unused credits; the refund is exactly what the
  package still holds (``remaining_value``), i.e. paid x unused / total, the rounding of the credits
  spent going in the student's favour (at most 1 minor unit per spent credit); the package closes.
"""

from __future__ import annotations

import calendar
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import User
from marketplace.audit import audit_record
from marketplace.db import after_commit, session_factory, transaction, utcnow
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.i18n import format_date, format_money, ngettext, use_locale
from marketplace.i18n import gettext as _
from marketplace.mail import mail_queue
from marketplace.settings import get_settings
from marketplace.tutors.models import TutorProfile
from payouts import ledger
from payouts.models import (
    PACKAGE_DISPUTE_NOTE,
    LessonPackage,
    PackageOffer,
    PackageStatus,
    Payment,
    PaymentStatus,
    TransferStatus,
)
from payouts.providers import get_provider
from scheduling.models import Booking, BookingKind, BookingStatus

log = logging.getLogger(__name__)

PROCESSED, DEFERRED, IGNORED = "processed", "deferred", "ignored"

SIZES = (5, 10)
DISCOUNT_MIN, DISCOUNT_MAX = 0, 50
LESSON_MINUTES = 60
VALID_MONTHS = 6
REMINDER_DAYS = 14
PROVIDER = "package"  # ``Payment.provider`` of a lesson paid with a credit


def frozen_message() -> str:
    """Shown when a student tries to use (or refund) a package while a dispute on its charge is open."""
    return _(
        "This package is frozen while a payment dispute about it is open with your bank: its credits cannot be "
        "used or refunded until the dispute is settled. You can still pay for lessons by card."
    )


def add_months(value: datetime, months: int) -> datetime:
    """The same day ``months`` later (the month's last day when it is shorter: 31 Aug + 6 = 28 Feb)."""
    month0 = value.month - 1 + months
    year, month = value.year + month0 // 12, month0 % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


# ---- the tutor's offer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    lessons: int
    discount_percent: int
    unit_price: int  # one 60-minute lesson
    amount: int  # the package
    currency: str

    @property
    def full_price(self) -> int:
        return self.unit_price * self.lessons

    @property
    def price_text(self) -> str:
        return format_money(self.amount, self.currency)

    @property
    def full_price_text(self) -> str:
        return format_money(self.full_price, self.currency)

    @property
    def per_lesson_text(self) -> str:
        return format_money(self.amount // self.lessons, self.currency)


def lesson_price(profile: TutorProfile | None) -> tuple[int, str] | None:
    """The tutor's published 60-minute price and currency (packages are made of 60-minute lessons)."""
    live = (profile.live if profile is not None else None) or {}
    for item in live.get("durations") or []:
        if isinstance(item, dict) and int(item.get("minutes") or 0) == LESSON_MINUTES and item.get("price"):
            return int(item["price"]), str(live.get("currency") or "EUR")
    return None


async def package_offers(session: AsyncSession, *, tutor_id: uuid.UUID) -> dict[int, PackageOffer]:
    rows = await session.execute(select(PackageOffer).where(PackageOffer.tutor_id == tutor_id))
    return {o.lessons: o for o in rows.scalars()}


async def package_quotes(session: AsyncSession, *, tutor_id: uuid.UUID) -> list[Quote]:
    """The packages a student can buy from this tutor now (active offers, a 60-minute price)."""
    profile = await session.scalar(select(TutorProfile).where(TutorProfile.user_id == tutor_id))
    price = lesson_price(profile)
    if price is None:
        return []
    unit, currency = price
    offers = await package_offers(session, tutor_id=tutor_id)
    return [
        Quote(
            n,
            o.discount_percent,
            unit,
            ledger.package_price(unit_price=unit, lessons=n, discount_percent=o.discount_percent),
            currency,
        )
        for n, o in sorted(offers.items())
        if o.active
    ]


def parse_discount(raw: str | None, *, field: str) -> int:
    text = (raw or "").strip().rstrip("%").strip()
    message = _("Enter a discount from %(min)d to %(max)d percent.", min=DISCOUNT_MIN, max=DISCOUNT_MAX)
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValidationFailed(message, errors={field: message}) from None
    if not DISCOUNT_MIN <= value <= DISCOUNT_MAX:
        raise ValidationFailed(message, errors={field: message})
    return value


async def package_offers_set(session: AsyncSession, *, tutor: User, offers: dict[int, tuple[bool, int]]) -> None:
    """Set the tutor's offers: ``{lessons: (enabled, discount_percent)}`` for 5 and 10."""
    errors: dict[str, str] = {}
    for n, (_enabled, discount) in offers.items():
        if n not in SIZES:
            raise ValidationFailed(_("Packages have 5 or 10 lessons."))
        if not DISCOUNT_MIN <= discount <= DISCOUNT_MAX:
            errors[f"discount_{n}"] = _(
                "Enter a discount from %(min)d to %(max)d percent.", min=DISCOUNT_MIN, max=DISCOUNT_MAX
            )
    if errors:
        raise ValidationFailed(next(iter(errors.values())), errors=errors)
    if any(enabled for enabled, _d in offers.values()):
        profile = await session.scalar(select(TutorProfile).where(TutorProfile.user_id == tutor.id))
        if lesson_price(profile) is None:
            message = _("Packages are made of 60-minute lessons: offer 60-minute lessons in your pricing first.")
            raise ValidationFailed(message, errors={"packages": message})
    existing = await package_offers(session, tutor_id=tutor.id)
    before = {n: [o.active, o.discount_percent] for n, o in existing.items()}
    for n, (enabled, discount) in offers.items():
        offer = existing.get(n)
        if offer is None:
            offer = PackageOffer(tutor_id=tutor.id, lessons=n)
            session.add(offer)
        offer.active = enabled
        offer.discount_percent = discount
    await session.flush()
    await audit_record(
        session,
        actor_id=tutor.id,
        action="payment.package_offers",
        target_type="user",
        target_id=tutor.id,
        before={str(k): v for k, v in before.items()},
        after={str(n): [e, d] for n, (e, d) in offers.items()},
    )


# ---- buying ----------------------------------------------------------------------------------------


async def package_checkout_start(*, student: User, tutor_id: uuid.UUID, lessons: int) -> str:
    """The provider's checkout URL for a new package (a double click gets the same open checkout)."""
    from payouts.services import payout_account_ready

    provider = get_provider()
    now = utcnow()
    async with transaction() as session:
        if tutor_id == student.id:
            raise ValidationFailed(_("You cannot buy your own lesson package."))
        tutor = await session.get(User, tutor_id)
        profile = await session.scalar(select(TutorProfile).where(TutorProfile.user_id == tutor_id))
        if tutor is None or profile is None or tutor.banned_at is not None or not profile.is_public:
            raise NotFound(_("We could not find that tutor."))
        if lessons not in SIZES:
            raise ValidationFailed(_("Packages have 5 or 10 lessons."))
        quote = next((q for q in await package_quotes(session, tutor_id=tutor_id) if q.lessons == lessons), None)
        if quote is None:
            raise Conflict(_("This tutor does not offer this package."))
        if not await payout_account_ready(session, tutor_id=tutor_id):
            raise Conflict(_("This tutor cannot take paid bookings yet."))
        if quote.amount <= 0:
            raise ValidationFailed(_("This package has no price to pay."))
        package = await session.scalar(
            select(LessonPackage)
            .where(
                LessonPackage.student_id == student.id,
                LessonPackage.tutor_id == tutor_id,
                LessonPackage.lessons == lessons,
                LessonPackage.status.in_((PackageStatus.created, PackageStatus.open)),
                LessonPackage.created_at > now - timedelta(minutes=50),
            )
            .order_by(LessonPackage.created_at.desc())
            .limit(1)
            .with_for_update()
        )
        if package is not None and package.amount == quote.amount and package.checkout_url:
            return package.checkout_url
        if package is None or package.amount != quote.amount:
            package = LessonPackage(
                student_id=student.id,
                tutor_id=tutor_id,
                provider=provider.name,
                status=PackageStatus.created,
                lessons=lessons,
                lesson_minutes=LESSON_MINUTES,
                unit_price=quote.unit_price,
                discount_percent=quote.discount_percent,
                amount=quote.amount,
                currency=quote.currency,
            )
            session.add(package)
            await session.flush()
        package_id, attempt, amount, currency = package.id, package.attempt, package.amount, package.currency
        description = ngettext(
            "%(num)d lesson with %(name)s", "%(num)d lessons with %(name)s", lessons, name=tutor.display_name
        )
    base = get_settings().base_url
    info = await provider.create_package_checkout(
        package_id=package_id,
        amount=amount,
        currency=currency,
        description=description,
        customer_email=student.email,
        success_url=f"{base}/payments/packages/{package_id}/success?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base}/payments/packages/{package_id}/cancel",
        idempotency_key=f"package_checkout:{package_id}:{attempt}",
    )
    async with transaction() as session:
        package = await session.get(LessonPackage, package_id, with_for_update=True)
        if package.attempt == attempt and package.status == PackageStatus.created:
            package.status = PackageStatus.open
            package.checkout_session_id = info.id
            package.checkout_url = info.url
    return info.url


# ---- provider events (called from payouts.services' handlers) -------------------------------------


def package_id_of(obj: dict[str, Any]) -> uuid.UUID | None:
    raw = (obj.get("metadata") or {}).get("package_id")
    if not raw:
        ref = str(obj.get("client_reference_id") or "")
        raw = ref.removeprefix("package_") if ref.startswith("package_") else None
    try:
        return uuid.UUID(str(raw)) if raw else None
    except ValueError:
        return None


async def _locked_package(session: AsyncSession, obj: dict[str, Any]) -> LessonPackage | None:
    package_id = package_id_of(obj)
    conditions = []
    if package_id is not None:
        conditions.append(LessonPackage.id == package_id)
    if obj.get("id"):
        conditions.append(LessonPackage.checkout_session_id == obj["id"])
    if not conditions:
        return None
    return await session.scalar(select(LessonPackage).where(or_(*conditions)).with_for_update())


async def on_checkout_completed(session: AsyncSession, obj: dict[str, Any]) -> str:
    package = await _locked_package(session, obj)
    if package is None:
        log.warning("checkout session %s for unknown package", obj.get("id"))
        return IGNORED
    if obj.get("payment_intent") and not package.payment_intent_id:
        package.payment_intent_id = obj["payment_intent"]
    if obj.get("payment_status") not in ("paid", "no_payment_required"):
        if package.status in (PackageStatus.open, PackageStatus.created, PackageStatus.expired):
            package.status = PackageStatus.processing
        return PROCESSED
    return await _fulfil(session, package, obj)


async def on_async_succeeded(session: AsyncSession, obj: dict[str, Any]) -> str:
    package = await _locked_package(session, obj)
    if package is None:
        return IGNORED
    return await _fulfil(session, package, {**obj, "payment_status": "paid"})


async def on_async_failed(session: AsyncSession, obj: dict[str, Any]) -> str:
    package = await _locked_package(session, obj)
    if package is None:
        return IGNORED
    if package.paid_amount == 0:
        package.status = PackageStatus.failed
        package.failure_message = "asynchronous payment failed"
    return PROCESSED


async def on_checkout_expired(session: AsyncSession, obj: dict[str, Any]) -> str:
    package = await _locked_package(session, obj)
    if package is None:
        return IGNORED
    if package.status in (PackageStatus.open, PackageStatus.created) and package.checkout_session_id == obj.get("id"):
        package.status = PackageStatus.expired
    return PROCESSED


async def on_charge_event(session: AsyncSession, obj: dict[str, Any]) -> str | None:
    """A charge event (refunded, dispute) about a package's charge: refunds on it are written to the
    ledger from the refund calls' results (each under its own key), so the event is only noted.
    None when the charge is not a package's."""
    intent = obj.get("payment_intent")
    if not intent:
        return None
    package = await session.scalar(select(LessonPackage).where(LessonPackage.payment_intent_id == intent))
    if package is None:
        return None
    if obj.get("object") == "charge" and obj.get("id") and not package.charge_id:
        package.charge_id = obj["id"]
    return PROCESSED if package.paid_amount > 0 else DEFERRED


# ---- provider disputes (chargebacks) on a package's charge ------------------------------------------

DISPUTE_OPEN, DISPUTE_WON, DISPUTE_LOST = "open", "won", "lost"


async def _package_of_charge(session: AsyncSession, obj: dict[str, Any]) -> LessonPackage | None:
    """The package whose charge a dispute (``charge``, ``payment_intent``) is about, locked."""
    conditions = []
    if obj.get("payment_intent"):
        conditions.append(LessonPackage.payment_intent_id == obj["payment_intent"])
    if obj.get("charge"):
        conditions.append(LessonPackage.charge_id == obj["charge"])
    if not conditions:
        return None
    return await session.scalar(select(LessonPackage).where(or_(*conditions)).with_for_update())


async def _package_lessons(session: AsyncSession, package_id: uuid.UUID) -> list[Payment]:
    rows = await session.execute(
        select(Payment).where(Payment.package_id == package_id).order_by(Payment.created_at).with_for_update()
    )
    return list(rows.scalars())


def _untransferred(payment: Payment) -> bool:
    return payment.transfer_id is None and payment.transfer_status != TransferStatus.cancelled


async def on_dispute_created(session: AsyncSession, obj: dict[str, Any]) -> str | None:
    """``charge.dispute.created`` on a package's charge (None when the charge is not a package's).

    The package is frozen (no credit can be spent, refunded or expire while the dispute is open;
    the student's packages page says why) and so are the transfers of the lessons paid from it
    that have not been transferred yet (``transfer_status`` frozen, ``provider_dispute_id`` set, as
    the lesson path does). A dispute that closed already (its events out of order) or a replay
    changes nothing, so the order of the events does not matter."""
    package = await _package_of_charge(session, obj)
    if package is None:
        return None
    if package.paid_amount == 0:
        return DEFERRED  # the package's own payment event has not been applied yet
    dispute_id = str(obj.get("id") or "")
    if obj.get("charge") and not package.charge_id:
        package.charge_id = obj["charge"]
    if package.status == PackageStatus.unapplied or (package.dispute and package.dispute[0] == dispute_id):
        return PROCESSED  # money refunded as unapplied anyway; or this dispute is known (replay, closed first)
    package.failure_message = f"{PACKAGE_DISPUTE_NOTE}{dispute_id}:{DISPUTE_OPEN}"
    for payment in await _package_lessons(session, package.id):
        if _untransferred(payment) and payment.transfer_status != TransferStatus.frozen:
            payment.transfer_status = TransferStatus.frozen
            payment.provider_dispute_id = dispute_id
    log.info("package %s frozen by dispute %s", package.id, dispute_id)
    return PROCESSED


async def on_dispute_closed(session: AsyncSession, obj: dict[str, Any]) -> str | None:
    """``charge.dispute.closed`` on a package's charge (None when the charge is not a package's).

    Won (or an inquiry closed, ``warning_closed``): the package is usable again and the lessons'
    transfers this dispute froze go ahead (``transfer_status`` none, a transfer job each; a
    lesson released by an admin before the dispute waits for its review window again). Lost: see
    :func:`_dispute_lost`. Once closed, the same dispute's ``created`` (late) and replays change
    nothing: created-then-closed and closed-then-created end in the same state."""
    from payouts.services import _transfer_soon

    package = await _package_of_charge(session, obj)
    if package is None:
        return None
    if package.paid_amount == 0:
        return DEFERRED
    dispute_id = str(obj.get("id") or "")
    if obj.get("charge") and not package.charge_id:
        package.charge_id = obj["charge"]
    if package.status == PackageStatus.unapplied:
        return PROCESSED
    if package.dispute and package.dispute[0] == dispute_id and package.dispute[1] != DISPUTE_OPEN:
        return PROCESSED  # replay
    lost = obj.get("status") == "lost"
    package.failure_message = f"{PACKAGE_DISPUTE_NOTE}{dispute_id}:{DISPUTE_LOST if lost else DISPUTE_WON}"
    lessons = await _package_lessons(session, package.id)
    if lost:
        await _dispute_lost(session, package, lessons, dispute_id)
        return PROCESSED
    for payment in lessons:
        if not _untransferred(payment) or payment.provider_dispute_id not in (None, dispute_id):
            continue
        if payment.transfer_status == TransferStatus.frozen and payment.provider_dispute_id is None:
            continue  # frozen by the student's own dispute of the lesson: an admin decides
        payment.provider_dispute_id = dispute_id
        payment.transfer_status = TransferStatus.none
        after_commit(session, _transfer_soon(payment.booking_id))
    return PROCESSED


async def _dispute_lost(session: AsyncSession, package: LessonPackage, lessons: list[Payment], dispute_id: str) -> None:
    """A lost dispute: the provider took back what the package's charge still held (its amount
    less the refunds made on it) and gave it to the student. The package closes (status
    ``refunded``, no credits, no value; a pending pro-rata refund is dropped: the bank paid it).
    The lessons paid from it and not transferred yet are settled too: their transfer is cancelled
    (the tutor is not paid for them, as with a lesson whose own dispute is lost) and they count as
    refunded, so no later cancellation refunds them a second time.

    Ledger: one transaction ``package_dispute_lost`` (key ``package_dispute_lost:{package}``, so a
    replay adds nothing), in the package's currency; not of kind ``refund``, as the provider shows
    no refund on the charge (reconciliation compares those):

    * Dr ``package_credit:{package}``: its ``remaining_value`` (the unused credits);
    * Dr ``tutor_payable:{tutor}``: for each lesson not transferred, the tutor's part of what is
      not refunded of it (as a refund of the rest would take it back);
    * Dr ``refunds``: the fee's part of those lessons, plus what is not refunded of the lessons
      already transferred (the tutor has been paid; the platform bears it);
    * Cr ``cash_at_provider``: the sum = remaining value + the unrefunded part of every lesson
      paid from the package = what the charge still held.

    The provider's dispute fee is not booked (nor is it for lessons)."""
    from payouts.services import ledger_post

    tutor_part = platform_part = 0
    for payment in lessons:
        left = payment.paid_amount - payment.refunded_amount
        if _untransferred(payment):
            share = ledger.tutor_share_of_refund(
                paid=payment.paid_amount, fee=payment.fee_amount, refunded_total=payment.refunded_amount
            )
            tutor_part += (payment.paid_amount - payment.fee_amount) - share
            platform_part += left - ((payment.paid_amount - payment.fee_amount) - share)
            payment.provider_dispute_id = payment.provider_dispute_id or dispute_id
            payment.refunded_amount = payment.refund_requested = payment.paid_amount
            payment.transfer_status = TransferStatus.cancelled
        elif payment.transfer_id is not None:
            platform_part += left
    value, currency = package.remaining_value, package.currency
    if value + tutor_part + platform_part > 0:
        await ledger_post(
            session,
            ledger.make_txn(
                "package_dispute_lost",
                f"package_dispute_lost:{package.id}",
                [
                    ledger.Posting(ledger.package_credit(package.id), value, currency),
                    ledger.Posting(ledger.tutor_payable(package.tutor_id), tutor_part, currency),
                    ledger.Posting(ledger.REFUNDS, platform_part, currency),
                    ledger.Posting(ledger.CASH, -(value + tutor_part + platform_part), currency),
                ],
            ),
            tutor_id=package.tutor_id,
            memo=f"dispute {dispute_id} lost"[:300],
        )
    if package.status in (PackageStatus.active, PackageStatus.refunding):
        package.status = PackageStatus.refunded
    package.credits_left = 0
    package.remaining_value = 0
    package.refund_requested = package.refunded_amount
    package.closed_at = package.closed_at or utcnow()


async def _fulfil(session: AsyncSession, package: LessonPackage, obj: dict[str, Any]) -> str:
    from payouts.services import ledger_post

    if package.paid_amount > 0:
        return PROCESSED  # applied already (replay, or completed + async_payment_succeeded)
    amount = int(obj.get("amount_total") or 0)
    currency = str(obj.get("currency") or "").upper()
    now = utcnow()
    package.paid_amount = amount
    package.paid_at = now
    package.checkout_session_id = package.checkout_session_id or obj.get("id")
    if obj.get("payment_intent"):
        package.payment_intent_id = obj["payment_intent"]
    if amount != package.amount or currency != package.currency:
        package.status = PackageStatus.unapplied
        package.failure_message = "amount or currency does not match the package"
        package.currency = currency if len(currency) == 3 and currency.isalpha() else package.currency
        if amount > 0:
            await ledger_post(
                session,
                ledger.unapplied_payment_txn(key=f"package:{package.id}", amount=amount, currency=package.currency),
                tutor_id=package.tutor_id,
                memo=package.failure_message,
            )
            package.refund_requested = amount
            _refund_soon(session, package.id)
        return PROCESSED
    package.status = PackageStatus.active
    package.credits_left = package.lessons
    package.remaining_value = amount
    package.expires_at = add_months(now, VALID_MONTHS)
    await ledger_post(
        session,
        ledger.package_purchase_txn(
            key=f"package:{package.id}", package_id=package.id, amount=amount, currency=currency
        ),
        tutor_id=package.tutor_id,
    )
    return PROCESSED


# ---- spending a credit -------------------------------------------------------------------------------


def _not_disputed():
    """No open provider dispute on the package's charge (see :func:`on_dispute_created`)."""
    return or_(LessonPackage.failure_message.is_(None), LessonPackage.failure_message.not_like("dispute:%:open"))


def _usable(now: datetime):
    return (
        LessonPackage.status == PackageStatus.active,
        LessonPackage.credits_left > 0,
        LessonPackage.expires_at > now,
        _not_disputed(),
    )


async def credits_for_booking(session: AsyncSession, *, booking: Booking, now: datetime | None = None) -> int:
    """How many credits the booking's student has with its tutor that could pay it (0 if none can)."""
    now = now or utcnow()
    if booking.kind != BookingKind.lesson or booking.duration_minutes != LESSON_MINUTES:
        return 0
    rows = await session.execute(
        select(LessonPackage.credits_left).where(
            LessonPackage.student_id == booking.student_id,
            LessonPackage.tutor_id == booking.tutor_id,
            LessonPackage.currency == booking.currency,
            *_usable(now),
        )
    )
    return sum(rows.scalars())


async def package_credit_spend(*, student: User, booking_id: uuid.UUID, now: datetime | None = None) -> LessonPackage:
    """Pay a held 60-minute lesson with one credit from the student's package with its tutor (the
    one expiring first) and confirm the booking, in one transaction (see the module doc)."""
    from payouts.services import fee_for, ledger_post, payment_for_booking
    from scheduling import bookings as scheduling_bookings

    now = now or utcnow()
    async with session_factory()() as session:
        payment = await payment_for_booking(session, booking_id=booking_id)
        open_session = payment.checkout_session_id if payment and payment.status == PaymentStatus.open else None
    if open_session:
        # A card checkout was started for this hold: close it first, so it cannot be paid as well.
        if not await get_provider().expire_checkout(open_session):
            raise Conflict(_("This booking was paid by card already."))
    async with transaction() as session:
        booking = await session.scalar(select(Booking).where(Booking.id == booking_id).with_for_update())
        if booking is None or booking.student_id != student.id:
            raise NotFound(_("We could not find this booking."))
        payment = await payment_for_booking(session, booking_id=booking_id)
        if payment is not None and payment.status in (PaymentStatus.paid, PaymentStatus.processing):
            raise Conflict(_("This booking is paid already."))
        if booking.status != BookingStatus.held:
            raise Conflict(_("This booking is not waiting for payment."))
        if booking.hold_expires_at is None or booking.hold_expires_at <= now:
            raise Conflict(_("The time to pay for this booking has run out. Please pick the slot again."))
        if booking.kind != BookingKind.lesson or booking.duration_minutes != LESSON_MINUTES:
            raise ValidationFailed(_("A package credit pays for one regular 60-minute lesson."))
        package = await session.scalar(
            select(LessonPackage)
            .where(
                LessonPackage.student_id == student.id,
                LessonPackage.tutor_id == booking.tutor_id,
                LessonPackage.currency == booking.currency,
                *_usable(now),
            )
            .order_by(LessonPackage.expires_at)
            .limit(1)
            .with_for_update()
        )
        if package is None:
            frozen = await session.scalar(
                select(LessonPackage.id)
                .where(
                    LessonPackage.student_id == student.id,
                    LessonPackage.tutor_id == booking.tutor_id,
                    LessonPackage.status == PackageStatus.active,
                    LessonPackage.credits_left > 0,
                    LessonPackage.failure_message.like("dispute:%:open"),
                )
                .limit(1)
            )
            if frozen is not None:
                raise Conflict(frozen_message())
            raise Conflict(_("You have no package credits left with this tutor."))
        value = ledger.credit_value(remaining_value=package.remaining_value, credits_left=package.credits_left)
        taken = await session.execute(
            update(LessonPackage)
            .where(
                LessonPackage.id == package.id,
                LessonPackage.credits_left == package.credits_left,
                LessonPackage.remaining_value == package.remaining_value,
                *_usable(now),
            )
            .values(credits_left=LessonPackage.credits_left - 1, remaining_value=LessonPackage.remaining_value - value)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            raise Conflict(_("You have no package credits left with this tutor."))
        await session.refresh(package)
        fee = fee_for(value)
        if payment is None:
            payment = Payment(
                booking_id=booking.id, student_id=booking.student_id, tutor_id=booking.tutor_id, attempt=1
            )
            session.add(payment)
        payment.provider = PROVIDER
        payment.status = PaymentStatus.paid
        payment.amount = value
        payment.currency = booking.currency
        payment.fee_amount = fee
        payment.paid_amount = value
        payment.paid_at = now
        payment.package_id = package.id
        payment.checkout_session_id = None
        payment.checkout_url = None
        await session.flush()
        # The same key as a card payment of this booking: a booking is paid once, by card or credit.
        await ledger_post(
            session,
            ledger.package_spend_txn(
                key=f"payment:{payment.id}",
                package_id=package.id,
                tutor_id=booking.tutor_id,
                value=value,
                fee=fee,
                currency=booking.currency,
            ),
            booking_id=booking.id,
            tutor_id=booking.tutor_id,
        )
        try:
            await scheduling_bookings.booking_confirm_payment(session, booking_id=booking.id, paid_at=now, now=now)
        except scheduling_bookings.HoldLapsed as exc:
            raise Conflict(exc.message) from exc
        return package


async def credit_back(session: AsyncSession, payment: Payment, total: int) -> bool:
    """A credit-paid lesson refunded in full (``total`` >= its value, nothing refunded yet) while its
    package is active: the credit returns to the package instead of money. False: pay money."""
    from payouts.services import ledger_post

    if payment.package_id is None or total < payment.paid_amount or payment.refunded_amount > 0:
        return False
    package = await session.get(LessonPackage, payment.package_id, with_for_update=True)
    if (
        package is None
        or package.status != PackageStatus.active
        or (package.expires_at and package.expires_at <= utcnow())
    ):
        return False
    await ledger_post(
        session,
        ledger.package_credit_return_txn(
            key=f"refund:{payment.id}:{payment.paid_amount}",
            package_id=package.id,
            tutor_id=payment.tutor_id,
            tutor_part=payment.paid_amount - payment.fee_amount,
            platform_part=payment.fee_amount,
            currency=payment.currency,
        ),
        booking_id=payment.booking_id,
        tutor_id=payment.tutor_id,
    )
    package.credits_left += 1
    package.remaining_value += payment.paid_amount
    payment.refunded_amount = payment.paid_amount
    payment.refund_requested = payment.paid_amount
    if payment.transfer_status in (TransferStatus.none, TransferStatus.pending, TransferStatus.released):
        payment.transfer_status = TransferStatus.cancelled
    return True


def refund_in_credit_terms(*, refund: int, price: int, value: int) -> int:
    """A policy refund of ``refund`` on a lesson of ``price`` paid with a credit worth ``value``: the
    same share of the credit's value, rounded up (the policy rounds in the student's favour)."""
    if price <= 0 or refund <= 0:
        return 0
    if refund >= price:
        return value
    return -((-value * refund) // price)


# ---- pro-rata refund ----------------------------------------------------------------------------------


def _refund_soon(session: AsyncSession, package_id: uuid.UUID) -> None:
    def send() -> None:
        from payouts.jobs import refund_package

        refund_package.send(str(package_id))

    after_commit(session, send)


async def package_refund_request(*, student: User, package_id: uuid.UUID) -> LessonPackage:
    """The student refunds the unused credits: the package closes at once (no credit can be spent
    any more) and the refund of ``remaining_value`` is made by a job after commit."""
    async with transaction() as session:
        package = await session.get(LessonPackage, package_id, with_for_update=True)
        if package is None or package.student_id != student.id:
            raise NotFound(_("We could not find this package."))
        if package.status in (PackageStatus.refunding, PackageStatus.refunded):
            raise Conflict(_("This package has been refunded already."))
        if package.disputed:
            raise Conflict(frozen_message())
        if package.status == PackageStatus.lapsed or (package.expires_at and package.expires_at <= utcnow()):
            raise Conflict(_("The credits of this package have expired."))
        if package.status != PackageStatus.active:
            raise Conflict(_("This package is not paid."))
        if package.credits_left <= 0 or package.remaining_value <= 0:
            raise Conflict(_("This package has no unused credits to refund."))
        before = {"status": package.status.value, "credits_left": package.credits_left}
        closed = await session.execute(
            update(LessonPackage)
            .where(
                LessonPackage.id == package.id,
                LessonPackage.status == PackageStatus.active,
                LessonPackage.credits_left == package.credits_left,
                _not_disputed(),
            )
            .values(
                status=PackageStatus.refunding,
                credits_left=0,
                refund_requested=LessonPackage.remaining_value,
                closed_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if closed.rowcount != 1:
            raise Conflict(_("This package changed meanwhile. Please try again."))
        await session.refresh(package)
        await audit_record(
            session,
            actor_id=student.id,
            action="payment.package_refund",
            target_type="lesson_package",
            target_id=package.id,
            before=before,
            after={"status": package.status.value, "refund": package.refund_requested},
        )
        _refund_soon(session, package.id)
        return package


async def package_refund_apply(*, package_id: uuid.UUID) -> int:
    """Make the provider's refund for this package reach ``refund_requested`` (idempotent; outside
    transactions) and write it to the ledger. Returns what is refunded."""
    from payouts.services import ledger_post

    async with session_factory()() as session:
        package = await session.get(LessonPackage, package_id)
    if package is None or package.refund_requested <= package.refunded_amount or not package.payment_intent_id:
        return package.refunded_amount if package is not None else 0
    target, before = package.refund_requested, package.refunded_amount
    result = await get_provider().refund(
        payment_intent_id=package.payment_intent_id,
        amount=target - before,
        idempotency_key=f"package_refund:{package.id}:{target}",
        booking_id=None,
        package_id=package.id,
    )
    async with transaction() as session:
        package = await session.get(LessonPackage, package_id, with_for_update=True)
        total = min(target, before + int(result.get("amount") or target - before))
        if total <= package.refunded_amount:
            return package.refunded_amount
        delta = total - package.refunded_amount
        if package.status == PackageStatus.unapplied:
            txn = ledger.unapplied_refund_txn(
                key=f"package_refund:{package.id}:{total}", amount=delta, currency=package.currency
            )
        else:
            txn = ledger.package_refund_txn(
                key=f"package_refund:{package.id}:{total}",
                package_id=package.id,
                amount=delta,
                currency=package.currency,
            )
            package.remaining_value -= delta
        await ledger_post(session, txn, tutor_id=package.tutor_id)
        package.refunded_amount = total
        if package.status == PackageStatus.refunding and total >= package.refund_requested:
            package.status = PackageStatus.refunded
        return package.refunded_amount


# ---- expiry --------------------------------------------------------------------------------------------


async def packages_remind(*, now: datetime | None = None) -> int:
    """Mail each student whose package's credits expire within REMINDER_DAYS, once (claimed by a
    conditional UPDATE), in the student's language and zone."""
    now = now or utcnow()
    async with session_factory()() as session:
        ids = list(
            (
                await session.execute(
                    select(LessonPackage.id).where(
                        *_usable(now),
                        LessonPackage.expires_at <= now + timedelta(days=REMINDER_DAYS),
                        LessonPackage.reminder_sent_at.is_(None),
                    )
                )
            ).scalars()
        )
    sent = 0
    for package_id in ids:
        try:
            async with transaction() as session:
                claimed = await session.execute(
                    update(LessonPackage)
                    .where(LessonPackage.id == package_id, LessonPackage.reminder_sent_at.is_(None), *_usable(now))
                    .values(reminder_sent_at=now)
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount != 1:
                    continue
                package = await session.get(LessonPackage, package_id)
                student = await session.get(User, package.student_id)
                tutor = await session.get(User, package.tutor_id)
                with use_locale(student.locale, student.timezone):
                    subject = _("Your lesson credits with %(name)s expire soon", name=tutor.display_name)
                    body = "\n\n".join(
                        [
                            ngettext(
                                "You have %(num)d unused lesson credit with %(name)s. It expires on %(date)s.",
                                "You have %(num)d unused lesson credits with %(name)s. They expire on %(date)s.",
                                package.credits_left,
                                name=tutor.display_name,
                                date=format_date(package.expires_at, "long"),
                            ),
                            _("Book a lesson or ask for a refund of the unused credits: %(url)s")
                            % {"url": f"{get_settings().base_url}/payments/packages"},
                        ]
                    )
                    await mail_queue(session, to=student.email, subject=subject, body=body)
        except Exception:  # one broken package must not stop the others; the next tick retries it
            log.exception("package reminder for %s failed", package_id)
            continue
        sent += 1
    return sent


async def packages_expire(*, now: datetime | None = None) -> int:
    """Expire the unused credits of packages past their date: the value still held becomes breakage
    (platform revenue). Idempotent (one ledger key per package)."""
    from payouts.services import ledger_post

    now = now or utcnow()
    async with session_factory()() as session:
        ids = list(
            (
                await session.execute(
                    select(LessonPackage.id).where(
                        LessonPackage.status == PackageStatus.active, LessonPackage.expires_at <= now, _not_disputed()
                    )
                )
            ).scalars()
        )
    done = 0
    for package_id in ids:
        async with transaction() as session:
            package = await session.get(LessonPackage, package_id, with_for_update=True)
            if (
                package.status != PackageStatus.active
                or package.disputed  # frozen: expires once the dispute is won (or closes with it lost)
                or package.expires_at is None
                or package.expires_at > now
            ):
                continue
            if package.remaining_value > 0:
                await ledger_post(
                    session,
                    ledger.package_expiry_txn(
                        key=f"package_expiry:{package.id}",
                        package_id=package.id,
                        amount=package.remaining_value,
                        currency=package.currency,
                    ),
                    tutor_id=package.tutor_id,
                    memo=f"{package.credits_left} unused credits expired",
                )
            package.status = PackageStatus.lapsed
            package.credits_left = 0
            package.remaining_value = 0
            package.closed_at = now
            done += 1
    return done


# ---- pages' reads ------------------------------------------------------------------------------------


@dataclass
class PackageRow:
    package: LessonPackage
    other: User  # the tutor (student's view) or the student (tutor's view)
    used: int

    @property
    def refundable(self) -> bool:
        p = self.package
        return (
            p.status == PackageStatus.active
            and not p.disputed
            and p.credits_left > 0
            and p.remaining_value > 0
            and (p.expires_at is None or p.expires_at > utcnow())
        )


async def _rows(session: AsyncSession, where: Any, other_column: Any, limit: int) -> list[PackageRow]:
    rows = (
        await session.execute(
            select(LessonPackage, User)
            .join(User, User.id == other_column)
            .where(where, LessonPackage.paid_amount > 0)
            .order_by(LessonPackage.created_at.desc())
            .limit(limit)
        )
    ).all()
    ids = [p.id for p, _u in rows]
    used: dict[uuid.UUID, int] = {}
    if ids:
        counts = await session.execute(
            select(Payment.package_id, func.count())
            .where(Payment.package_id.in_(ids), Payment.refunded_amount < Payment.paid_amount)
            .group_by(Payment.package_id)
        )
        used = {pid: int(n) for pid, n in counts.all()}
    return [PackageRow(p, u, used.get(p.id, 0)) for p, u in rows]


async def student_packages(session: AsyncSession, *, student_id: uuid.UUID, limit: int = 100) -> list[PackageRow]:
    return await _rows(session, LessonPackage.student_id == student_id, LessonPackage.tutor_id, limit)


async def tutor_packages(session: AsyncSession, *, tutor_id: uuid.UUID, limit: int = 100) -> list[PackageRow]:
    return await _rows(session, LessonPackage.tutor_id == tutor_id, LessonPackage.student_id, limit)


async def package_for_student(session: AsyncSession, *, student_id: uuid.UUID, package_id: uuid.UUID) -> PackageRow:
    rows = [r for r in await student_packages(session, student_id=student_id) if r.package.id == package_id]
    if not rows:
        raise NotFound(_("We could not find this package."))
    return rows[0]


async def package_for_checkout(session: AsyncSession, *, student_id: uuid.UUID, package_id: uuid.UUID) -> PackageRow:
    """A package of this student in any state (checkout pages), with its tutor."""
    package = await session.get(LessonPackage, package_id)
    if package is None or package.student_id != student_id:
        raise NotFound(_("We could not find this package."))
    tutor = await session.get(User, package.tutor_id)
    return PackageRow(package, tutor, package.lessons - package.credits_left if package.paid_amount else 0)


async def credit_payments_info(
    session: AsyncSession, payments: list[Payment]
) -> dict[uuid.UUID, tuple[LessonPackage, bool]]:
    """For the student's history and receipts: each credit-paid payment's package, and whether its
    refund was the credit returned to the package (no money moved) rather than a refund in money."""
    paid_by_credit = [p for p in payments if p.package_id is not None]
    if not paid_by_credit:
        return {}
    from payouts.models import LedgerTransaction

    package_ids = {p.package_id for p in paid_by_credit}
    found = (await session.execute(select(LessonPackage).where(LessonPackage.id.in_(package_ids)))).scalars()
    by_id = {p.id: p for p in found}
    keys = [f"refund:{p.id}:{p.paid_amount}" for p in paid_by_credit if p.refunded_amount]
    returned: set[str] = set()
    if keys:
        returned = set(
            (
                await session.execute(
                    select(LedgerTransaction.key).where(
                        LedgerTransaction.key.in_(keys), LedgerTransaction.kind == "package_credit_return"
                    )
                )
            ).scalars()
        )
    return {
        p.id: (by_id[p.package_id], f"refund:{p.id}:{p.paid_amount}" in returned)
        for p in paid_by_credit
        if p.package_id in by_id
    }


# ---- the profile section -----------------------------------------------------------------------------


async def profile_packages(session: AsyncSession, request: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The tutor's packages on the public profile, priced in the viewer's locale (registered with
    marketplace.tutors.public)."""
    from payouts.services import payout_account_ready

    profile = context.get("profile")
    if profile is None or not await payout_account_ready(session, tutor_id=profile.user_id):
        return {"packages": []}
    return {"packages": await package_quotes(session, tutor_id=profile.user_id), "packages_tutor_id": profile.user_id}


def register_profile_section() -> None:
    try:
        from marketplace.tutors.public import register_profile_section as register
    except ImportError:  # pragma: no cover - the tutors domain is always there
        return
    register(profile_packages)
